// libFuzzer target: TIFF decoding (every page; strips and tiles; LZW, Deflate, PackBits; 8-, 16-,
// 32-bit and float samples) as stored, as gray, and as labels. A result or a tessera::Error.
#include "fuzz/fuzz_common.h"
#include "data/tiff.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int rc = 0;
  for (int channels : {0, 1}) rc |= tessera::fuzz::guard([&] { tessera::fuzz::touch(tessera::decode_tiff(data, size, "fuzz tiff", channels)); });
  rc |= tessera::fuzz::guard([&] { tessera::fuzz::touch(tessera::decode_tiff_labels(data, size, "fuzz tiff labels")); });
  return rc;
}

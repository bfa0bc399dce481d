// libFuzzer target: image decoding (PNG, JPEG, BMP; 8 and 16 bits) as the file's
// own channels, as RGB, and as a label image. A result or a tessera::Error.
#include "fuzz/fuzz_common.h"
#include "data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int rc = 0;
  for (int channels : {0, 3}) rc |= tessera::fuzz::guard([&] { tessera::fuzz::touch(tessera::decode_image(data, size, "fuzz image", channels)); });
  rc |= tessera::fuzz::guard([&] { tessera::fuzz::touch(tessera::decode_label_image(data, size, "fuzz label image")); });
  return rc;
}

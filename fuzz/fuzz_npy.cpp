// libFuzzer target: .npy parsing. Any input gives a tensor or a tessera::Error.
#include "fuzz/fuzz_common.h"
#include "core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tessera::fuzz::guard([&] {
    tessera::Tensor t = tessera::parse_npy(reinterpret_cast<const char*>(data), size, "fuzz.npy");
    tessera::fuzz::touch(t);
  });
}

// libFuzzer target: safetensors parsing (F32 ... BOOL, F16, BF16). A result or a tessera::Error.
#include "fuzz/fuzz_common.h"
#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tessera::fuzz::guard([&] {
    tessera::SafetensorsFile f = tessera::parse_safetensors(reinterpret_cast<const char*>(data), size, "fuzz.safetensors");
    for (const auto& [name, t] : f.tensors) tessera::fuzz::touch(t);
  });
}

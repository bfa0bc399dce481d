// libFuzzer target: a COCO results file, and the binary encoding of results between ranks
// (decode_coco_results). A result or a tessera::Error.
#include "fuzz/fuzz_common.h"
#include "eval/coco_eval.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  int rc = tessera::fuzz::guard([&] {
    for (const tessera::CocoResult& r : tessera::parse_coco_results(bytes, "fuzz.json"))
      if (r.has_segmentation) tessera::fuzz::touch(tessera::coco::rle_decode(r.rle, r.height, r.width, "fuzz result"));
  });
  rc |= tessera::fuzz::guard([&] { tessera::decode_coco_results(bytes); });
  return rc;
}

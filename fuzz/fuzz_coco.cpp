// libFuzzer target: a COCO instances file, then every annotation's mask at its image's size
// (polygons rasterised, RLE decoded; images up to 4 Mpx). A result or a tessera::Error.
#include "fuzz/fuzz_common.h"
#include "data/coco.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tessera::fuzz::guard([&] {
    const tessera::CocoDataset ds =
        tessera::CocoDataset::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json", "", true);
    for (int64_t i = 0; i < ds.size(); ++i) {
      const tessera::CocoImage& im = ds.image(i);
      // Masks of claimed images up to 4 Mpx (the loader allows 2^28 pixels, legitimately: decoding
      // those is correct but slow, and would starve the fuzzer of executions).
      if (im.height * im.width > (int64_t{1} << 22)) continue;
      for (const tessera::CocoAnnotation& a : im.annotations)
        tessera::fuzz::touch(tessera::coco_annotation_mask(a, im.height, im.width, "fuzz annotation"));
    }
  });
}

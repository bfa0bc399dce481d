// libFuzzer target: a COCO instances file, then every annotation's mask at its image's size
// (polygons rasterised, RLE decoded). A result or a tessera::Error.
#include "fuzz/fuzz_common.h"
#include "data/coco.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tessera::fuzz::guard([&] {
    const tessera::CocoDataset ds =
        tessera::CocoDataset::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json", "", true);
    for (int64_t i = 0; i < ds.size(); ++i) {
      const tessera::CocoImage& im = ds.image(i);
      for (const tessera::CocoAnnotation& a : im.annotations)
        tessera::fuzz::touch(tessera::coco_annotation_mask(a, im.height, im.width, "fuzz annotation"));
    }
  });
}

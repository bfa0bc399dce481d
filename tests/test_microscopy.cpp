// The paper's data layouts: instance masks made into two classes with separated instances and the
// weight map from the real ids; CTC sequences (only annotated frames, 16-bit ids); ISBI stacks.
#include <filesystem>

#include "data/dataset.h"
#include "data/tiff.h"
#include "data/weight_map.h"
#include "test_helpers.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) { return test::scratch_dir("micro_" + name, true); }

// Two touching cells (ids 300 and 7000: 16-bit ids) and a lone one.
Tensor touching() {
  Tensor ids = zeros({12, 16}, kInt64);
  ids.narrow(0, 1, 6).narrow(1, 1, 5).fill_(300.0);
  ids.narrow(0, 1, 6).narrow(1, 6, 5).fill_(7000.0);
  ids.narrow(0, 8, 3).narrow(1, 12, 3).fill_(5.0);
  return ids;
}

TEST(Microscopy, SeparatedInstancesNeverTouch) {
  const Tensor ids = touching();
  const Tensor sep = separate_instances(ids);
  const std::vector<int64_t> v = sep.to_vector<int64_t>(), before = ids.to_vector<int64_t>();
  const int64_t H = 12, W = 16;
  int64_t removed = 0;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const int64_t id = v[y * W + x];
      if (before[y * W + x] != id) {
        ++removed;
        EXPECT_EQ(id, 0);
      }
      if (!id) continue;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy >= 0 && yy < H && xx >= 0 && xx < W) {
            EXPECT_TRUE(v[yy * W + xx] == 0 || v[yy * W + xx] == id) << y << "," << x;
          }
        }
    }
  EXPECT_EQ(removed, 6);  // the smaller id's column next to the larger one: a 1-pixel line
  Sample s;
  set_instances(s, ids);
  EXPECT_EQ(sum(s.mask).item<int64_t>(), 30 + 24 + 9);
  // The weight map sees the line as the gap between two cells: its border term is high there.
  const Tensor w = unet_weight_map(s.mask, s.instances);
  const float line = w.to_vector<float>()[3 * W + 5], inside = w.to_vector<float>()[3 * W + 2], far = w.to_vector<float>()[11 * W + 0];
  EXPECT_GT(line, inside + 5.0f);
  EXPECT_GT(line, far + 5.0f);
  test::expect_error([] { separate_instances(full({3, 3}, -1, kInt64)); }, {"negative"});
}

TEST(Microscopy, FrameNumbers) {
  EXPECT_EQ(frame_number("man_seg012.tif"), 12);
  EXPECT_EQ(frame_number("/a/b7/t0042_instances.tif"), 42);
  EXPECT_EQ(frame_number("mask000.tif"), 0);
  EXPECT_EQ(frame_number("labels.tif"), -1);
}

TEST(Microscopy, CtcSequenceTakesAnnotatedFramesOnly) {
  const fs::path dir = scratch("ctc");
  fs::create_directories(dir / "01");
  fs::create_directories(dir / "01_GT" / "SEG");
  fs::create_directories(dir / "01_ST" / "SEG");
  for (int t = 0; t < 4; ++t) write_tiff((dir / "01" / ("t00" + std::to_string(t) + ".tif")).string(), full({12, 16}, 1000 * (t + 1), kInt64));
  write_tiff((dir / "01_GT" / "SEG" / "man_seg001.tif").string(), touching());
  write_tiff((dir / "01_GT" / "SEG" / "man_seg003.tif").string(), touching());
  write_tiff((dir / "01_ST" / "SEG" / "man_seg002.tif").string(), touching());
  ASSERT_TRUE(CtcSequence::looks_like((dir / "01").string()));
  EXPECT_FALSE(CtcSequence::looks_like(dir.string()));
  const CtcSequence gold((dir / "01").string());
  ASSERT_EQ(gold.size(), 2);
  const Sample s = gold.get(1);
  EXPECT_NE(s.name.find("t003.tif"), std::string::npos);
  EXPECT_FLOAT_EQ(s.image.to_vector<float>()[0], 4000.0f / 65535.0f);  // 16-bit frames scaled by 65535
  EXPECT_EQ(amax(s.instances).item<int64_t>(), 7000);                 // ids kept
  EXPECT_TRUE(test::equal(s.instances, separate_instances(touching())));
  const CtcSequence silver((dir / "01").string(), true);
  ASSERT_EQ(silver.size(), 1);
  EXPECT_NE(silver.get(0).name.find("t002.tif"), std::string::npos);
  // An annotation without its frame is an Error naming both.
  write_tiff((dir / "01_GT" / "SEG" / "man_seg009.tif").string(), touching());
  test::expect_error([&] { CtcSequence((dir / "01").string()); }, {"man_seg009.tif", "t9"});
  fs::remove_all(dir);
}

TEST(Microscopy, FoldersOfInstanceMasks) {
  const fs::path dir = scratch("folder");
  fs::create_directories(dir / "images");
  fs::create_directories(dir / "masks");
  write_tiff((dir / "images" / "a.tif").string(), full({12, 16}, 0.5, kFloat32));
  write_tiff((dir / "masks" / "a.tif").string(), touching());
  const ImageMaskFolder semantic((dir / "images").string(), (dir / "masks").string());
  EXPECT_EQ(amax(semantic.get(0).mask).item<int64_t>(), 7000);  // as stored: semantic labels
  const ImageMaskFolder inst((dir / "images").string(), (dir / "masks").string(), 1, true);
  const Sample s = inst.get(0);
  EXPECT_EQ(amax(s.mask).item<int64_t>(), 1);
  EXPECT_TRUE(test::equal(s.instances, separate_instances(touching())));
  EXPECT_FLOAT_EQ(s.image.to_vector<float>()[0], 0.5f);
  fs::remove_all(dir);
}

TEST(Microscopy, IsbiStackSlices) {
  const fs::path dir = scratch("isbi");
  Tensor volume = rand({3, 10, 12});
  Tensor labels = mul(gt(rand({3, 10, 12}), 0.3).to(kInt64), 255);
  write_tiff((dir / "v.tif").string(), volume);
  write_tiff((dir / "l.tif").string(), labels);
  const IsbiStack isbi((dir / "v.tif").string(), (dir / "l.tif").string());
  ASSERT_EQ(isbi.size(), 3);
  const Sample s = isbi.get(2);
  EXPECT_TRUE(test::equal(s.image.squeeze(0), volume.select(0, 2)));
  EXPECT_TRUE(test::equal(s.mask, div(labels.select(0, 2), 255)));
  write_tiff((dir / "l2.tif").string(), labels.narrow(0, 0, 2));
  test::expect_error([&] { IsbiStack((dir / "v.tif").string(), (dir / "l2.tif").string()); }, {"v.tif", "l2.tif"});
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tessera

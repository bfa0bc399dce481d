// Synthetic datasets, the U-Net weight map, augmentation, detection transforms and the loader.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "data/augment.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/synthetic.h"
#include "data/transforms.h"
#include "data/weight_map.h"
#include "test_helpers.h"

namespace tessera {
namespace {

// ---- synthetic datasets

TEST(SyntheticShapes, DeterministicAndConsistent) {
  SyntheticShapes ds(20, 5);
  for (int64_t i = 0; i < 20; ++i) {
    Sample a = ds.get(i), b = ds.get(i);
    EXPECT_TRUE(test::equal(a.image, b.image));
    ASSERT_EQ(a.image.shape(), (Shape{3, 128, 128}));
    const int64_t k = a.labels.numel();
    ASSERT_EQ(a.labels.shape(), (Shape{k}));  // also for one object (not a 0-dim tensor)
    ASSERT_EQ(a.boxes.shape(), (Shape{k, 4}));
    ASSERT_EQ(a.masks.shape(), (Shape{k, 128, 128}));
    for (int64_t j = 0; j < k; ++j) {
      // The box is the tight box of the mask.
      Tensor m = a.masks.select(0, j);
      Tensor ys = nonzero(m).select(1, 0), xs = nonzero(m).select(1, 1);
      std::vector<float> box = a.boxes.select(0, j).to_vector<float>();
      EXPECT_EQ(box[0], static_cast<float>(amin(xs).item<int64_t>()));
      EXPECT_EQ(box[1], static_cast<float>(amin(ys).item<int64_t>()));
      EXPECT_EQ(box[2], static_cast<float>(amax(xs).item<int64_t>() + 1));
      EXPECT_EQ(box[3], static_cast<float>(amax(ys).item<int64_t>() + 1));
      const int64_t label = a.labels.to_vector<int64_t>()[j];
      EXPECT_TRUE(label >= 1 && label <= 3);
    }
    // Occlusion: no pixel belongs to two instances.
    if (k > 0) {
      EXPECT_LE(amax(sum(a.masks.to(kInt64), {0})).item<int64_t>(), 1);
    }
  }
  EXPECT_FALSE(test::equal(ds.get(0).image, ds.get(1).image));
  EXPECT_FALSE(test::equal(SyntheticShapes(20, 6).get(0).image, ds.get(0).image));
  EXPECT_THROW(ds.get(20), Error);
}

TEST(SyntheticShapes, ClassicPlacementKeepsShapesApartAndLarge) {
  // The classic sample's rules: a shape overlapping an earlier one with box IoU > 0.3 is dropped,
  // so no shape hides another entirely (every image keeps its first shape) and the visible boxes
  // overlap little; half-sizes are 20..32 px at 128 px, so boxes are at least ~20 px wide.
  SyntheticShapes ds(60, 11);
  double worst_iou = 0;
  int64_t objects = 0;
  for (int64_t i = 0; i < ds.size(); ++i) {
    Sample a = ds.get(i);
    const int64_t k = a.labels.numel();
    ASSERT_GE(k, 1) << "image " << i;
    objects += k;
    const std::vector<float> b = a.boxes.to_vector<float>();
    for (int64_t p = 0; p < k; ++p) {
      const float* u = &b[static_cast<size_t>(4 * p)];
      EXPECT_GE(std::max(u[2] - u[0], u[3] - u[1]), 20.f) << "image " << i << " object " << p;
      for (int64_t q = p + 1; q < k; ++q) {
        const float* v = &b[static_cast<size_t>(4 * q)];
        const double ix = std::max(0.f, std::min(u[2], v[2]) - std::max(u[0], v[0]));
        const double iy = std::max(0.f, std::min(u[3], v[3]) - std::max(u[1], v[1]));
        const double inter = ix * iy, uni = (u[2] - u[0]) * (u[3] - u[1]) + (v[2] - v[0]) * (v[3] - v[1]) - inter;
        worst_iou = std::max(worst_iou, inter / uni);
      }
    }
  }
  EXPECT_LE(worst_iou, 0.45);
  EXPECT_GT(objects, ds.size());  // several shapes per image on average, not one
}

TEST(SyntheticCells, TouchingCellsAreSeparatedInTheMask) {
  SyntheticCells ds(6, 3);
  int64_t touching = 0;
  for (int64_t i = 0; i < 6; ++i) {
    Sample s = ds.get(i);
    ASSERT_EQ(s.image.shape(), (Shape{1, 256, 256}));
    EXPECT_TRUE(test::equal(s.image, ds.get(i).image));
    const std::vector<int64_t> inst = s.instances.to_vector<int64_t>(), mask = s.mask.to_vector<int64_t>();
    for (int64_t y = 0; y + 1 < 256; ++y)
      for (int64_t x = 0; x + 1 < 256; ++x) {
        const int64_t p = y * 256 + x;
        for (int64_t q : {p + 1, p + 256}) {
          if (inst[p] != 0 && inst[q] != 0 && inst[p] != inst[q]) {
            ++touching;
            EXPECT_EQ(mask[p], 0);  // a touching border is background in the mask
            EXPECT_EQ(mask[q], 0);
          }
        }
      }
    // The mask is the cells minus borders: never foreground outside a cell.
    for (int64_t p = 0; p < 256 * 256; ++p)
      if (inst[p] == 0) {
        ASSERT_EQ(mask[p], 0);
      }
  }
  EXPECT_GT(touching, 100) << "the synthetic cells should often touch";
}

// ---- weight map

TEST(WeightMap, DistanceTransformIsExact) {
  Generator g(4);
  Tensor inside = lt(rand({23, 31}, kFloat64, &g), 0.05);
  Tensor d = squared_distance_transform(inside);
  const std::vector<bool> in = inside.to_vector<bool>();
  const std::vector<double> got = d.to_vector<double>();
  for (int64_t y = 0; y < 23; ++y)
    for (int64_t x = 0; x < 31; ++x) {
      double best = INFINITY;
      for (int64_t yy = 0; yy < 23; ++yy)
        for (int64_t xx = 0; xx < 31; ++xx)
          if (in[yy * 31 + xx]) best = std::min(best, static_cast<double>((y - yy) * (y - yy) + (x - xx) * (x - xx)));
      ASSERT_EQ(got[y * 31 + x], best) << y << "," << x;
    }
  EXPECT_TRUE(std::isinf(squared_distance_transform(zeros({3, 3}, kBool)).to_vector<double>()[4]));
}

TEST(WeightMap, MatchesTheFormulaWithBruteForceDistances) {
  SyntheticCells ds(1, 9, 64, 64);
  Sample s = ds.get(0);
  const double w0 = 10, sigma = 5;
  Tensor w = unet_weight_map(s.mask, s.instances, 2, w0, sigma);
  const std::vector<int64_t> inst = s.instances.to_vector<int64_t>(), mask = s.mask.to_vector<int64_t>();
  const int64_t n_fg = std::count(mask.begin(), mask.end(), 1), N = 64 * 64;
  const double wc[2] = {static_cast<double>(N) / (2.0 * static_cast<double>(N - n_fg)), static_cast<double>(N) / (2.0 * static_cast<double>(n_fg))};
  const int64_t cells = amax(s.instances).item<int64_t>();
  const std::vector<float> got = w.to_vector<float>();
  for (int64_t p = 0; p < N; ++p) {
    double expected = wc[mask[p]];
    if (mask[p] == 0) {
      std::vector<double> d(static_cast<size_t>(cells), INFINITY);
      for (int64_t q = 0; q < N; ++q)
        if (inst[q] > 0) d[inst[q] - 1] = std::min(d[inst[q] - 1], std::hypot(double(p / 64 - q / 64), double(p % 64 - q % 64)));
      std::sort(d.begin(), d.end());
      if (cells >= 2) expected += w0 * std::exp(-(d[0] + d[1]) * (d[0] + d[1]) / (2 * sigma * sigma));
    }
    ASSERT_NEAR(got[p], expected, 1e-5 * expected) << "pixel " << p;
  }
  EXPECT_THROW(unet_weight_map(full({4, 4}, 2, kInt64), zeros({4, 4}, kInt64)), Error);
}

// ---- augmentation

Sample cell_sample() {
  SyntheticCells ds(1, 2, 64, 64);
  Sample s = ds.get(0);
  s.weight = unet_weight_map(s.mask, s.instances);
  return s;
}

TEST(Augment, ZeroDisplacementIsTheIdentity) {
  Sample s = cell_sample();
  Tensor source = add(identity_grid(64, 64), upsample_displacements(zeros({2, 3, 3}, kFloat64), 64, 64));
  Sample r = warp(s, source);
  EXPECT_TRUE(test::equal(r.image, s.image));
  EXPECT_TRUE(test::equal(r.mask, s.mask));
  EXPECT_TRUE(test::equal(r.instances, s.instances));
  EXPECT_TRUE(test::equal(r.weight, s.weight));
  UnetAugmentOptions none;
  none.elastic_sigma = 0;
  none.max_rotation_deg = 0;
  none.max_shift = 0;
  none.flips = false;
  none.contrast = none.brightness = none.gamma = 0;
  DataRng rng(1);
  Sample q = augment_unet(s, rng, none);
  EXPECT_TRUE(test::close(q.image, s.image, 1e-6, 0));
  EXPECT_TRUE(test::equal(q.mask, s.mask));
}

TEST(Augment, WarpsMoveImageLabelsAndWeightsTogether) {
  Sample s = cell_sample();
  // A whole-pixel shift: every field moves by exactly 3 rows, mirrored at the top.
  Tensor source = identity_grid(64, 64);
  double* sy = source.data<double>();
  for (int64_t i = 0; i < 64 * 64; ++i) sy[i] -= 3.0;
  Sample r = warp(s, source);
  EXPECT_TRUE(test::equal(r.image.narrow(1, 3, 61), s.image.narrow(1, 0, 61)));
  EXPECT_TRUE(test::equal(r.mask.narrow(0, 3, 61), s.mask.narrow(0, 0, 61)));
  EXPECT_TRUE(test::equal(r.weight.narrow(0, 3, 61), s.weight.narrow(0, 0, 61)));
  EXPECT_TRUE(test::equal(r.image.select(1, 0), s.image.select(1, 3)));  // mirrored: row -3 reads row 3
  // The bicubic displacement field passes through the coarse nodes.
  Tensor coarse = randn({2, 3, 3}, kFloat64);
  Tensor field = upsample_displacements(coarse, 65, 65);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j)
      EXPECT_NEAR(test::host(field).at({0, i * 32, j * 32}), test::host(coarse).at({0, i, j}), 1e-12);
  // A random augmentation keeps labels in range and is reproducible from its seed.
  DataRng r1(7), r2(7);
  Sample a = augment_unet(s, r1), b = augment_unet(s, r2);
  EXPECT_TRUE(test::equal(a.image, b.image));
  EXPECT_TRUE(test::equal(a.mask, b.mask));
  EXPECT_LE(amax(a.mask).item<int64_t>(), 1);
  EXPECT_GE(amin(a.image).item<float>(), 0.f);
  EXPECT_LE(amax(a.image).item<float>(), 1.f);
}

TEST(Augment, HorizontalFlipOfDetectionSamples) {
  Sample s = SyntheticShapes(1, 4).get(0);
  Sample f = hflip(s);
  EXPECT_TRUE(test::equal(hflip(f).image, s.image));
  const std::vector<float> b = s.boxes.to_vector<float>(), fb = f.boxes.to_vector<float>();
  for (size_t i = 0; i < b.size(); i += 4) {
    EXPECT_EQ(fb[i], 128.f - b[i + 2]);
    EXPECT_EQ(fb[i + 2], 128.f - b[i]);
    EXPECT_EQ(fb[i + 1], b[i + 1]);
  }
  EXPECT_TRUE(test::equal(f.masks.select(2, 0), s.masks.select(2, 127)));
}

// ---- detection transforms against torchvision's GeneralizedRCNNTransform

Tensor fixture(const std::string& name) { return load_npy(test::data_path("torch/detection_transform/min100_max160/" + name + ".npy")); }

TEST(DetectionTransform, MatchesGeneralizedRCNNTransform) {
  const std::vector<double> mean = {0.485, 0.456, 0.406}, stdv = {0.229, 0.224, 0.225};
  std::vector<Tensor> images;
  for (int i = 0; i < 2; ++i) {
    Sample s;
    s.image = normalize_image(fixture("image" + std::to_string(i)), mean, stdv);
    s.boxes = fixture("boxes" + std::to_string(i));
    s.masks = fixture("masks" + std::to_string(i));
    Sample r = resize_for_detection(s, 100, 160);
    EXPECT_TRUE(test::close(r.boxes, fixture("out_boxes" + std::to_string(i)), 1e-6, 1e-6)) << i;
    EXPECT_TRUE(test::equal(r.masks, fixture("out_masks" + std::to_string(i)))) << i;
    images.push_back(r.image);
  }
  ImageBatch b = batch_images(images, 32);
  // Normalised values reach about 2.6: 1e-5 relative to that scale.
  EXPECT_TRUE(test::close(b.images, fixture("batch"), 3e-5, 1e-5));
  const std::vector<int64_t> sizes = fixture("sizes").to_vector<int64_t>();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(b.sizes[i].first, sizes[2 * i]);
    EXPECT_EQ(b.sizes[i].second, sizes[2 * i + 1]);
  }
  EXPECT_THROW(normalize_image(zeros({3, 4, 4}), {0.5, 0.5}, {1, 1}), Error);
  EXPECT_THROW(batch_images({zeros({3, 4, 4}), zeros({1, 4, 4})}), Error);
}

TEST(DetectionTransform, ResizedSizesMatchTorchvisionToThePixel) {
  // Every (h, w, min_size, max_size) of the grid that scripts/make_fixtures.py ran through
  // torchvision's _resize_image_and_masks, e.g. 150 x 100 at (160, 256) -> 239 x 159.
  const Tensor rows = load_npy(test::data_path("torch/detection_resize_sizes/grid/rows.npy"));
  ASSERT_EQ(rows.size(1), 6);
  const std::vector<int64_t> v = rows.to_vector<int64_t>();
  int mismatches = 0;
  for (int64_t r = 0; r < rows.size(0); ++r) {
    const int64_t* x = &v[static_cast<size_t>(r * 6)];
    const auto [h, w] = detection_resize_size(x[0], x[1], static_cast<double>(x[2]), static_cast<double>(x[3]));
    if (h != x[4] || w != x[5])
      ADD_FAILURE() << x[0] << " x " << x[1] << " at (" << x[2] << ", " << x[3] << "): " << h << " x " << w << ", torchvision "
                    << x[4] << " x " << x[5] << (++mismatches > 10 ? " (stopping)" : "");
    if (mismatches > 10) break;
  }
  EXPECT_GT(rows.size(0), 1000);
}

// ---- loader

class Flaky : public Dataset {
 public:
  int64_t size() const override { return 10; }
  Sample get(int64_t i) const override {
    TS_CHECK(i != 4, "corrupt file for sample 4");
    Sample s;
    s.image = full({1, 2, 2}, static_cast<double>(i));
    return s;
  }
  std::string describe(int64_t i) const override { return "item " + std::to_string(i) + " ('file" + std::to_string(i) + ".png')"; }
};

std::vector<double> epoch_values(DataLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<double> v;
  while (auto batch = loader.next())
    for (const Sample& s : *batch) v.push_back(s.image.to_vector<float>()[0] + 100 * s.image.to_vector<float>()[1]);
  return v;
}

TEST(DataLoader, SameBatchesWhateverTheWorkers) {
  auto ds = std::make_shared<SyntheticCells>(12, 1, 64, 64);
  auto transform = [](Sample s, DataRng& rng) { return augment_unet(s, rng); };
  std::vector<std::vector<double>> runs;
  for (int workers : {0, 1, 3}) {
    LoaderOptions o;
    o.batch_size = 5;
    o.seed = 11;
    o.workers = workers;
    DataLoader loader(ds, o, transform);
    EXPECT_EQ(loader.batches_per_epoch(), 3);
    runs.push_back(epoch_values(loader, 2));
  }
  EXPECT_EQ(runs[0].size(), 12u);
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(runs[0], runs[2]);
}

// torch.utils.data.DistributedSampler's semantics: one shared shuffle per epoch, padded from its
// start to a multiple of the replicas, every replicas-th index from the rank.
TEST(DistributedSampler, DisjointEqualShardsOfOneSharedShufflePerEpoch) {
  for (int replicas : {1, 2, 3, 4})
    for (int64_t epoch : {0, 1}) {
      const std::vector<int64_t> whole = epoch_indices(10, true, 7, epoch);
      std::vector<int> count(10, 0);
      const int64_t per = (10 + replicas - 1) / replicas;
      for (int r = 0; r < replicas; ++r) {
        const std::vector<int64_t> shard = epoch_indices(10, true, 7, epoch, replicas, r);
        ASSERT_EQ(static_cast<int64_t>(shard.size()), per) << replicas << " replicas, rank " << r;
        for (size_t k = 0; k < shard.size(); ++k) {
          // Position r + k * replicas of the padded permutation.
          const int64_t pos = r + static_cast<int64_t>(k) * replicas;
          EXPECT_EQ(shard[k], whole[static_cast<size_t>(pos % 10)]);
          ++count[static_cast<size_t>(shard[k])];
        }
      }
      // Every index once; the padding repeats the permutation's first (per * replicas - 10).
      const int64_t padding = per * replicas - 10;
      for (int64_t i = 0; i < 10; ++i) {
        const bool padded = std::find(whole.begin(), whole.begin() + padding, i) != whole.begin() + padding;
        EXPECT_EQ(count[static_cast<size_t>(i)], padded ? 2 : 1) << "index " << i;
      }
    }
  EXPECT_NE(epoch_indices(10, true, 7, 0), epoch_indices(10, true, 7, 1));
  EXPECT_EQ(epoch_indices(5, false, 7, 3, 2, 1), (std::vector<int64_t>{1, 3, 0}));
  EXPECT_THROW(epoch_indices(5, false, 0, 0, 2, 2), Error);
  // A loader that is rank 1 of 3 hands out exactly its shard.
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 4;
  o.workers = 1;
  o.replicas = 3;
  o.rank = 1;
  o.shuffle = true;
  struct Numbered : Dataset {
    int64_t size() const override { return 10; }
    Sample get(int64_t i) const override {
      Sample smp;
      smp.image = full({1, 1, 1}, static_cast<double>(i));
      return smp;
    }
    std::string describe(int64_t i) const override { return "item " + std::to_string(i); }
  };
  auto ds = std::make_shared<Numbered>();
  DataLoader loader(ds, o);
  EXPECT_EQ(loader.batches_per_epoch(), 2);  // 4 samples
  std::vector<double> got;
  loader.start_epoch(2);
  while (auto batch = loader.next())
    for (const Sample& smp : *batch) got.push_back(smp.image.to_vector<float>()[0]);
  const std::vector<int64_t> shard = epoch_indices(10, true, 4, 2, 3, 1);
  ASSERT_EQ(got.size(), shard.size());
  for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], static_cast<double>(shard[k]));
  o.rank = 3;
  EXPECT_THROW(DataLoader(ds, o), Error);
}

TEST(DataLoader, ShufflesPerEpochAndCoversEverySample) {
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 5;
  o.workers = 2;
  o.drop_last = false;
  DataLoader loader(std::make_shared<Flaky>(), o);
  o.skip_bad = true;
  DataLoader skipping(std::make_shared<Flaky>(), o);
  std::vector<double> e0 = epoch_values(skipping, 0), e1 = epoch_values(skipping, 1);
  EXPECT_EQ(e0.size(), 9u);  // sample 4 skipped
  EXPECT_NE(e0, e1);
  std::set<double> seen(e0.begin(), e0.end());
  EXPECT_EQ(seen.size(), 9u);
  EXPECT_EQ(seen.count(4.0 + 400), 0u);
  EXPECT_EQ(skipping.skipped(), 2);
  // Without skip_bad, the bad sample stops the epoch with its name.
  loader.start_epoch(0);
  try {
    while (loader.next()) {
    }
    FAIL() << "expected the corrupt sample to stop the epoch";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("file4.png"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(loader.next().has_value());
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

TEST(ImageMaskFolder, PairsByStemAndReportsProblems) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("tessera_folder_" + std::to_string(::getpid()));
  fs::create_directories(root / "images");
  fs::create_directories(root / "masks");
  write_png((root / "images" / "b.png").string(), rand({1, 8, 6}));
  write_png((root / "images" / "a.png").string(), rand({1, 8, 6}));
  Tensor mask_a = randint(0, 3, {8, 6}).to(kUInt8);
  write_png((root / "masks" / "a.png").string(), mask_a);
  write_png((root / "masks" / "b.png").string(), zeros({8, 6}, kUInt8));
  ImageMaskFolder ds((root / "images").string(), (root / "masks").string());
  ASSERT_EQ(ds.size(), 2);
  Sample a = ds.get(0);
  EXPECT_EQ(a.image.shape(), (Shape{1, 8, 6}));
  EXPECT_TRUE(test::equal(a.mask, mask_a.to(kInt64)));
  EXPECT_NE(ds.describe(1).find("images/b.png"), std::string::npos);
  EXPECT_NE(ds.describe(1).find("masks/b.png"), std::string::npos);  // a bad mask value is the mask's
  // A mask of the wrong size is reported with both files.
  write_png((root / "masks" / "b.png").string(), zeros({7, 6}, kUInt8));
  try {
    ds.get(1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.png"), std::string::npos) << e.what();
  }
  // An image without a mask is found at construction.
  write_png((root / "images" / "c.png").string(), rand({1, 8, 6}));
  EXPECT_THROW(ImageMaskFolder((root / "images").string(), (root / "masks").string()), Error);
  EXPECT_THROW(ImageMaskFolder((root / "nowhere").string(), (root / "masks").string()), Error);
}

TEST(Subset, IsARenumberedRangeOfItsDatasetAndChecksIndices) {
  auto base = std::make_shared<SyntheticShapes>(6, 3, 64, 64);
  const Subset held(base, 4, 6);
  ASSERT_EQ(held.size(), 2);
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(test::equal(held.get(i).image, base->get(4 + i).image));
    EXPECT_EQ(held.describe(i), base->describe(4 + i));
  }
  EXPECT_EQ(Subset(base, 2, 2).size(), 0);
  EXPECT_THROW(held.get(2), Error);   // would be the base's sample 6: past its end
  EXPECT_THROW(held.get(-1), Error);  // would be the base's sample 3: outside the range
  EXPECT_THROW(Subset(base, 3, 7), Error);
  EXPECT_THROW(Subset(base, 4, 3), Error);
  EXPECT_THROW(Subset(nullptr, 0, 0), Error);
}

}  // namespace
}  // namespace tessera

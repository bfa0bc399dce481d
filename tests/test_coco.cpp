// COCO masks and annotations against pycocotools (scripts/make_coco_fixtures.py).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/coco.h"
#include "data/coco_mask.h"
#include "test_helpers.h"

namespace tessera {
namespace {

using json = nlohmann::json;

json load_json(const std::string& rel) {
  std::ifstream in(test::data_path(rel));
  return json::parse(in);
}

// Polygons straight to RLE (outlines, then run-by-run unions) equal encoding the dense union mask,
// for overlapping, disjoint, touching and out-of-image polygons.
TEST(CocoMask, PolygonsToRleEqualsEncodingTheirMask) {
  Generator gen(11);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t h = 20 + trial % 7 * 9, w = 17 + trial % 5 * 11;
    std::vector<std::vector<double>> polys;
    const int n = 1 + trial % 4;
    for (int p = 0; p < n; ++p) {
      const std::vector<float> r = uniform({12}, -0.2, 1.2, kFloat32, &gen).to_vector<float>();
      std::vector<double> xy;
      for (int k = 0; k < 6; ++k) {
        xy.push_back(r[static_cast<size_t>(2 * k)] * static_cast<double>(w));
        xy.push_back(r[static_cast<size_t>(2 * k + 1)] * static_cast<double>(h));
      }
      polys.push_back(xy);
    }
    const coco::Counts want = coco::rle_encode(coco::polygons_to_mask(polys, h, w));
    EXPECT_EQ(coco::polygons_to_rle(polys, h, w), want) << "trial " << trial;
  }
  // Union of two hand-made masks of 2 x 3 (column-major): 110100 | 011000 = 111100.
  EXPECT_EQ(coco::rle_union({0, 2, 1, 1, 2}, {1, 2, 3}), (coco::Counts{0, 4, 2}));
  EXPECT_EQ(coco::rle_union({6}, {6}), (coco::Counts{6}));
  EXPECT_EQ(coco::rle_intersection({0, 2, 1, 1, 2}, {1, 2, 3}), 1u);  // 110100 & 011000 = 010000
  EXPECT_EQ(coco::rle_intersection({6}, {0, 6}), 0u);
}

TEST(CocoMask, PolygonsRasteriseExactlyAsPycocotools) {
  const json f = load_json("coco/polygons.json");
  const int64_t h = f["h"], w = f["w"];
  int n = 0;
  for (const json& rec : f["records"]) {
    const std::vector<double> poly = rec["polygon"].get<std::vector<double>>();
    const coco::Counts counts = coco::polygon_to_rle(poly, h, w);
    EXPECT_EQ(coco::rle_to_string(counts), rec["counts"].get<std::string>()) << "polygon " << n;
    EXPECT_EQ(coco::rle_area(counts), rec["area"].get<int64_t>()) << "polygon " << n;
    ++n;
  }
  EXPECT_GE(n, 16);
}

TEST(CocoMask, CompressedStringsDecodeAndEncodeAsPycocotools) {
  const json f = load_json("coco/rle_strings.json");
  const int64_t h = f["h"], w = f["w"];
  for (int i = 0; i < 6; ++i) {
    const std::string s = f["strings"][i];
    Tensor expected = load_npy(test::data_path("coco/mask" + std::to_string(i) + ".npy"));
    Tensor decoded = coco::rle_decode(coco::rle_from_string(s), h, w);
    EXPECT_TRUE(test::equal(decoded, expected)) << "mask " << i;
    EXPECT_EQ(coco::rle_to_string(coco::rle_encode(expected)), s) << "mask " << i;
  }
  EXPECT_THROW(coco::rle_from_string("\x01\x02"), Error);            // characters outside the alphabet
  EXPECT_THROW(coco::rle_from_string("1o"), Error);                  // a chunk that promises more
  EXPECT_THROW(coco::rle_decode({3, 4}, 2, 2), Error);               // counts cover 7 of 4 pixels
  EXPECT_THROW(coco::polygon_to_rle({1.0, 2.0, 3.0, 4.0}, 5, 5), Error);
}

TEST(CocoDataset, AnnotationsBecomeBoxesLabelsAndMasks) {
  CocoDataset ds(test::data_path("coco/instances.json"), test::data_path("coco"));
  ASSERT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.num_classes(), 3);
  EXPECT_EQ(ds.category_ids(), (std::vector<int64_t>{3, 11, 18}));
  EXPECT_EQ(ds.label_of(11), 2);
  Sample a = ds.get(0);  // image id 7: the crowd annotation is left out, the rest kept
  EXPECT_EQ(a.image_id, 7);
  EXPECT_EQ(a.image.shape(), (Shape{3, 40, 50}));
  EXPECT_EQ(a.labels.to_vector<int64_t>(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(a.boxes.to_vector<float>(), (std::vector<float>{2.f, 3.f, 20.f, 18.7f, 30.f, 5.f, 45.f, 15.f}));
  ASSERT_EQ(a.masks.shape(), (Shape{2, 40, 50}));
  EXPECT_EQ(sum(a.masks.select(0, 1)).item<int64_t>(), 150);  // the compressed-RLE rectangle
  Sample b = ds.get(1);  // two polygons unite into one mask; the zero-width box is dropped
  EXPECT_EQ(b.labels.numel(), 1);
  const json f = load_json("coco/instances.json");
  CocoAnnotation two = ds.image(1).annotations[0];
  Tensor united = coco_annotation_mask(two, 30, 20, "test");
  EXPECT_EQ(sum(united.to(kInt64)).item<int64_t>(), sum(b.masks.to(kInt64)).item<int64_t>());
  // With crowd annotations kept: the uncompressed-RLE crowd region equals the compressed one.
  CocoDataset with_crowd(test::data_path("coco/instances.json"), test::data_path("coco"), true);
  Sample c = with_crowd.get(0);
  ASSERT_EQ(c.labels.numel(), 3);
  EXPECT_EQ(c.iscrowd.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_TRUE(test::equal(c.masks.select(0, 1), c.masks.select(0, 2)));
}

TEST(CocoDataset, MalformedFilesNameTheFieldAndTheFile) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("tessera_coco_" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  auto expect_bad = [&](const std::string& name, const std::string& text, const std::string& what) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << text;
    try {
      CocoDataset ds(path, dir);
      ADD_FAILURE() << name << " should be rejected";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(name), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in " << msg;
    }
  };
  const std::string head = R"({"categories": [{"id": 1, "name": "a"}], "images": [{"id": 1, "file_name": "x.png", "height": 4, "width": 4}], )";
  expect_bad("truncated.json", head, "not valid JSON");
  expect_bad("no_annotations.json", head.substr(0, head.size() - 2) + "}", "has no 'annotations'");
  expect_bad("bad_image_ref.json", head + R"("annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": [0,0,1,1], "segmentation": [[0,0,1,0,1,1]]}]})",
             "unknown image id 5");
  expect_bad("bad_category.json", head + R"("annotations": [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [0,0,1,1], "segmentation": [[0,0,1,0,1,1]]}]})",
             "unknown category id 9");
  expect_bad("bad_bbox.json", head + R"("annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0,0,1], "segmentation": [[0,0,1,0,1,1]]}]})",
             "bbox must be");
  expect_bad("bad_polygon.json", head + R"("annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "segmentation": [[0,0,1]]}]})",
             "at least 3");
  expect_bad("bad_rle_size.json", head + R"("annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "segmentation": {"size": [5, 4], "counts": [20]}}]})",
             "[height, width]");
  expect_bad("bad_rle_counts.json", head + R"("annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "segmentation": {"size": [4, 4], "counts": [3, 4]}}]})",
             "cover 7 pixels");
  expect_bad("string_id.json", head + R"("annotations": [{"id": "one", "image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "segmentation": [[0,0,1,0,1,1]]}]})",
             "must be an integer");
  expect_bad("missing.json_does_not_exist", "", "not valid JSON");
  // Found by fuzz_coco: a point at 3.7e67 (its cast to an integer grid was undefined; far points
  // also made the outline walk as long as the distance).
  expect_bad("far_point.json", head + R"("annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "segmentation": [[0,0,3.7e67,0,1,1]]}]})",
             "more than an image size outside");
  expect_bad("huge_image.json", R"({"categories": [{"id": 1, "name": "a"}], "images": [{"id": 1, "file_name": "x.png", "height": 100000, "width": 100000}], "annotations": []})",
             "more than tessera decodes");
  EXPECT_THROW(coco::polygon_to_rle({0, 0, 1e9, 0, 1, 1}, 4, 4), Error);
  // Found by fuzz_coco: an id of 8.9e76 (its cast to int64 was undefined); counts past 2^32.
  expect_bad("huge_id.json", head + R"("annotations": [{"id": 8.9e76, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "segmentation": [[0,0,1,0,1,1]]}]})",
             "must be an integer (of 64 bits)");
  expect_bad("huge_count.json", head + R"("annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0,0,1,1], "segmentation": {"size": [4, 4], "counts": [5e9, 16]}}]})",
             "below 2^32");
  EXPECT_NO_THROW(coco::polygon_to_rle({-3, -3, 6, 0, 1, 6}, 4, 4));  // a little outside is fine
  // A missing image file is reported when the sample is read, naming the file.
  const std::string ok = dir + "/ok.json";
  std::ofstream(ok) << head + R"("annotations": []})";
  CocoDataset ds(ok, dir);
  try {
    ds.get(0);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.png"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera

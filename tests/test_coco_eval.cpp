// COCO evaluation against pycocotools' COCOeval on the fixture of scripts/make_coco_eval_fixture.py
// (crowd regions, every area range, duplicates, wrong categories, tied scores, an image without
// objects and one without detections), plus hand-checkable cases and bad input.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_helpers.h"

namespace tessera {
namespace {

std::string dir() { return test::data_path("coco_eval"); }

TEST(CocoEval, MatchesPycocotoolsForBboxAndSegm) {
  CocoDataset gt(dir() + "/gt.json", "", true);
  const std::vector<CocoResult> results = load_coco_results(dir() + "/results.json");
  ASSERT_GT(results.size(), 20u);
  std::ifstream f(dir() + "/expected.json");
  const auto expected = nlohmann::json::parse(f);
  for (const std::string type : {"bbox", "segm"}) {
    const CocoEvalStats s = coco_evaluate(gt, results, type);
    const auto want = expected.at(type).get<std::vector<double>>();
    for (size_t i = 0; i < 12; ++i) EXPECT_NEAR(s.stats[i], want[i], 1e-9) << type << " stat " << i << "\n" << s.summary();
    // The named numbers of metrics files: pycocotools' order (AP50 second, AR100 ninth).
    const std::map<std::string, double> named = s.named(type);
    EXPECT_EQ(named.size(), 12u);
    EXPECT_EQ(named.at(type + "_AP50"), s.stats[1]);
    EXPECT_EQ(named.at(type + "_AR100"), s.stats[8]);
    EXPECT_EQ(named.at(type + "_ARl"), s.stats[11]);
  }
}

// Results with polygon segmentations (one or two parts), uncompressed RLE, or a bbox only, each with
// a bbox from the polygon's extent: pycocotools' areas (bbox w * h) and masks (polygons drawn at the
// image's size, a lone box as a polygon). Saving and the ranks' encoding keep the polygons.
TEST(CocoEval, PolygonResultsMatchPycocotools) {
  CocoDataset gt(dir() + "/gt.json", "", true);
  const std::vector<CocoResult> results = load_coco_results(dir() + "/results_polygons.json");
  int64_t polygons = 0, bbox_only = 0;
  for (const CocoResult& r : results) {
    polygons += !r.polygons.empty();
    bbox_only += !r.has_segmentation;
  }
  ASSERT_GT(polygons, 10);
  ASSERT_GT(bbox_only, 0);
  std::ifstream f(dir() + "/expected_polygons.json");
  const auto expected = nlohmann::json::parse(f);
  const std::string saved = (std::filesystem::temp_directory_path() / "tessera_polygon_results.json").string();
  save_coco_results(saved, results);
  const std::vector<CocoResult> reloaded = load_coco_results(saved), decoded = decode_coco_results(encode_coco_results(results));
  std::filesystem::remove(saved);
  for (const std::string type : {"bbox", "segm"}) {
    const auto want = expected.at(type).get<std::vector<double>>();
    for (const std::vector<CocoResult>* rs : {&results, &reloaded, &decoded}) {
      const CocoEvalStats s = coco_evaluate(gt, *rs, type);
      for (size_t i = 0; i < 12; ++i) EXPECT_NEAR(s.stats[i], want[i], 1e-12) << type << " stat " << i << "\n" << s.summary();
    }
  }
}

TEST(CocoEval, PerfectAndEmptyDetectionsAndRoundTrip) {
  CocoDataset gt(dir() + "/gt.json", "", true);
  // Every non-crowd object detected exactly (its own box and mask): AP 1 for both types.
  std::vector<CocoResult> perfect;
  for (int64_t i = 0; i < gt.size(); ++i) {
    const CocoImage& im = gt.image(i);
    for (const CocoAnnotation& a : im.annotations) {
      if (a.iscrowd) continue;
      CocoResult r;
      r.image_id = im.id;
      r.category_id = a.category_id;
      r.score = 0.5;
      r.bbox = {a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]};
      r.has_bbox = true;
      r.rle = coco::rle_encode(coco::polygons_to_mask(a.polygons, im.height, im.width));
      r.height = im.height;
      r.width = im.width;
      r.has_segmentation = true;
      perfect.push_back(r);
    }
  }
  for (const std::string type : {"bbox", "segm"}) {
    const CocoEvalStats s = coco_evaluate(gt, perfect, type);
    EXPECT_NEAR(s.ap(), 1.0, 1e-12) << type;
    EXPECT_NEAR(s.ap50(), 1.0, 1e-12) << type;
    EXPECT_NEAR(s.stats[8], 1.0, 1e-12) << type;  // AR@100
  }
  // No detections: AP 0 (there is ground truth), not -1.
  EXPECT_EQ(coco_evaluate(gt, {}, "bbox").ap(), 0.0);
  // Save and load keep every field (the RLE as a compressed string).
  const std::string path = (std::filesystem::temp_directory_path() / "tessera_coco_results.json").string();
  save_coco_results(path, perfect);
  const auto back = load_coco_results(path);
  ASSERT_EQ(back.size(), perfect.size());
  EXPECT_EQ(back[3].rle, perfect[3].rle);
  EXPECT_EQ(back[3].bbox, perfect[3].bbox);
  EXPECT_EQ(back[3].image_id, perfect[3].image_id);
  std::filesystem::remove(path);
}

TEST(CocoEval, BadInputIsAClearError) {
  const auto dir_ = std::filesystem::temp_directory_path() / "tessera_coco_bad";
  std::filesystem::create_directories(dir_);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  };
  EXPECT_THROW(load_coco_results(write("a.json", "{not json")), Error);
  // Numbers that do not fit (casts that were undefined, counts that were truncated).
  EXPECT_THROW(parse_coco_results("[{\"image_id\": 1e30, \"category_id\": 1, \"score\": 0.5, \"bbox\": [0, 0, 1, 1]}]", "x"), Error);
  EXPECT_THROW(parse_coco_results("[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.5, \"segmentation\": "
                                  "{\"size\": [1, 1], \"counts\": [4294967297, 0]}}]", "x"), Error);
  EXPECT_EQ(parse_coco_results("[{\"image_id\": 3.0, \"category_id\": 1, \"score\": 0.5, \"bbox\": [0, 0, 1, 1]}]", "x").at(0).image_id, 3);
  EXPECT_THROW(load_coco_results(write("b.json", "{\"image_id\": 1}")), Error);                     // not an array
  EXPECT_THROW(load_coco_results(write("c.json", "[{\"image_id\": 1, \"score\": 0.5}]")), Error);  // no category
  EXPECT_THROW(load_coco_results(write("d.json", "[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.5, \"bbox\": [1, 2]}]")),
               Error);
  EXPECT_THROW(load_coco_results(write("e.json", "[{\"image_id\": 1, \"category_id\": 1, \"score\": 0.5, "
                                                 "\"segmentation\": {\"size\": [2, 2], \"counts\": [1, 2]}}]")),
               Error);  // counts cover 3 of 4 pixels
  CocoDataset gt(dir() + "/gt.json", "", true);
  CocoResult r;
  r.image_id = 999;
  r.category_id = 1;
  r.has_bbox = true;
  r.bbox = {0, 0, 5, 5};
  try {
    coco_evaluate(gt, {r}, "bbox");
    FAIL() << "an unknown image id must be an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("999"), std::string::npos) << e.what();
  }
  r.image_id = 1;
  EXPECT_NO_THROW(coco_evaluate(gt, {r}, "segm"));  // no segmentation: its box as a polygon, as pycocotools
  r.bbox = {1e9, 0, 5, 5};
  EXPECT_THROW(coco_evaluate(gt, {r}, "segm"), Error);  // ... but not a box far outside the image
  CocoResult p = r;
  p.has_segmentation = true;
  p.polygons = {{1, 1, 4e9, 1, 2, 3}};
  EXPECT_THROW(coco_evaluate(gt, {p}, "segm"), Error);  // a polygon point far outside
  for (const char* bad : {R"([{"image_id":1,"category_id":1,"score":1,"segmentation":[[1,2,3,4]]}])",
                          R"([{"image_id":1,"category_id":1,"score":1,"segmentation":[]}])",
                          R"([{"image_id":1,"category_id":1,"score":1,"segmentation":[[1,2,3,"x",5,6]]}])",
                          R"([{"image_id":1,"category_id":1,"score":1,"segmentation":[[1,2,3,4,5]]}])"})
    EXPECT_THROW(parse_coco_results(bad, "bad.json"), Error) << bad;
  EXPECT_THROW(coco_evaluate(gt, {r}, "keypoints"), Error);
  std::filesystem::remove_all(dir_);
}

// Results between processes (sharded evaluation): every bit survives; any cut or corrupted length is
// an Error, never a read past the end or an allocation sized by the bytes.
TEST(CocoEval, ResultsSurviveEncodingAndCorruptBytesAreErrors) {
  std::vector<CocoResult> rs(3);
  for (size_t k = 0; k < rs.size(); ++k) {
    rs[k].image_id = static_cast<int64_t>(7 + k);
    rs[k].category_id = static_cast<int64_t>(k);
    rs[k].score = 1.0 / (3.0 + static_cast<double>(k));
    rs[k].bbox = {0.1, 0.2 * static_cast<double>(k), 1.0 / 3.0, 5.5};
    rs[k].has_bbox = k != 1;
    rs[k].has_segmentation = k != 2;
    rs[k].height = 4;
    rs[k].width = 5;
    if (rs[k].has_segmentation) rs[k].rle = {static_cast<uint32_t>(k), 3, 20 - static_cast<uint32_t>(k) - 3};
  }
  const std::string bytes = encode_coco_results(rs);
  const std::vector<CocoResult> back = decode_coco_results(bytes);
  ASSERT_EQ(back.size(), rs.size());
  for (size_t k = 0; k < rs.size(); ++k) {
    EXPECT_EQ(back[k].image_id, rs[k].image_id);
    EXPECT_EQ(back[k].category_id, rs[k].category_id);
    EXPECT_EQ(back[k].score, rs[k].score);
    EXPECT_EQ(back[k].bbox, rs[k].bbox);
    EXPECT_EQ(back[k].has_bbox, rs[k].has_bbox);
    EXPECT_EQ(back[k].has_segmentation, rs[k].has_segmentation);
    EXPECT_EQ(back[k].rle, rs[k].rle);
  }
  EXPECT_TRUE(decode_coco_results(encode_coco_results({})).empty());
  for (size_t cut = 0; cut < bytes.size(); ++cut) EXPECT_THROW(decode_coco_results(bytes.substr(0, cut)), Error) << "cut at " << cut;
  EXPECT_THROW(decode_coco_results(bytes + "x"), Error);
  std::string huge = bytes;
  const uint64_t n = uint64_t{1} << 60;
  std::memcpy(huge.data() + 8, &n, sizeof(n));  // the result count
  EXPECT_THROW(decode_coco_results(huge), Error);
}



}  // namespace
}  // namespace tessera

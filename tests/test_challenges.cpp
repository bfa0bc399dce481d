// ISBI 2012 and CTC measures: against the independent float64 reference of
// scripts/make_challenge_fixtures.py on generated stacks, and on hand-made cases whose answers are
// known by construction (one split, one merger, a hole, a missed and an extra object).
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/npy.h"
#include "eval/challenges.h"
#include "test_helpers.h"

namespace tessera {
namespace {

std::string fixture(const std::string& name) { return test::data_path("challenges/" + name); }

nlohmann::json expected() {
  std::ifstream in(fixture("expected.json"));
  return nlohmann::json::parse(in);
}

// A [H, W] int64 image with rectangles [y0, y1) x [x0, x1) set to their values.
struct Rect {
  int64_t y0, y1, x0, x1, value;
};
Tensor paint(int64_t h, int64_t w, const std::vector<Rect>& rects) {
  std::vector<int64_t> v(h * w, 0);
  for (const Rect& r : rects)
    for (int64_t y = r.y0; y < r.y1; ++y)
      for (int64_t x = r.x0; x < r.x1; ++x) v[y * w + x] = r.value;
  return from_vector<int64_t>(v).reshape({h, w});
}

TEST(IsbiMeasures, EqualTheIndependentReference) {
  const nlohmann::json e = expected();
  for (const char* name : {"isbi_a", "isbi_b"}) {
    SCOPED_TRACE(name);
    const Tensor gt = load_npy(fixture(std::string(name) + "_gt.npy")), prob = load_npy(fixture(std::string(name) + "_prob.npy"));
    const IsbiScores s = isbi_scores(gt, prob);
    const nlohmann::json& x = e[name];
    EXPECT_NEAR(s.v_rand, x["v_rand"].get<double>(), 1e-12);
    EXPECT_NEAR(s.v_info, x["v_info"].get<double>(), 1e-12);
    EXPECT_NEAR(s.rand_error, x["rand_error"].get<double>(), 1e-12);
    EXPECT_NEAR(s.pixel_error, x["pixel_error"].get<double>(), 1e-12);
    EXPECT_DOUBLE_EQ(s.warping_error, x["warping_error"].get<double>());
    EXPECT_EQ(s.splits, x["splits"].get<int64_t>());
    EXPECT_EQ(s.mergers, x["mergers"].get<int64_t>());
    EXPECT_EQ(s.v_rand_threshold, x["v_rand_threshold"].get<double>());
    EXPECT_EQ(s.v_info_threshold, x["v_info_threshold"].get<double>());
    EXPECT_EQ(s.warping_threshold, x["warping_threshold"].get<double>());
    // The fixture is not trivial: imperfect at every measure.
    EXPECT_LT(s.v_rand, 0.95);
    EXPECT_GT(s.splits + s.mergers, 0);
  }
}

TEST(IsbiMeasures, BorderThinningIsTheReferenceWatershed) {
  const Tensor border = load_npy(fixture("thin_border.npy")), want = load_npy(fixture("thin_labels.npy"));
  const Tensor got = watershed_thinning(border);
  EXPECT_TRUE(test::equal(got, want));
  // Every border pixel is either a line (0) or taken by a region it touches.
  EXPECT_GT(sum(eq(got, 0.0)).item<int64_t>(), 0);
  EXPECT_LT(sum(eq(got, 0.0)).item<int64_t>(), sum(ne(border, 0.0)).item<int64_t>());
}

TEST(IsbiMeasures, ThresholdsAreFijis) {
  const std::vector<double> t = isbi_thresholds();
  ASSERT_EQ(t.size(), 11u);
  EXPECT_EQ(t[0], 0.0);
  EXPECT_LT(t[10], 1.0);  // 0.1 summed ten times
  EXPECT_GT(t[10], 0.9999);
}

TEST(IsbiMeasures, APerfectProposalScoresPerfectly) {
  // Two cells separated by a membrane column, a membrane frame around them.
  const Tensor gt = paint(12, 15, {{1, 11, 1, 7, 255}, {1, 11, 8, 14, 255}});
  const Tensor prob = div(gt.to(kFloat32), 255.0);
  const IsbiScores s = isbi_scores(gt, prob);
  EXPECT_DOUBLE_EQ(s.v_rand, 1.0);
  EXPECT_DOUBLE_EQ(s.v_info, 1.0);
  EXPECT_DOUBLE_EQ(s.rand_error, 0.0);
  EXPECT_DOUBLE_EQ(s.pixel_error, 0.0);
  EXPECT_DOUBLE_EQ(s.warping_error, 0.0);
  // Merging the two cells (the membrane predicted as cell) halves the Rand merge score.
  const Tensor merged = div(paint(12, 15, {{1, 11, 1, 14, 255}}).to(kFloat32), 255.0);
  const IsbiScores m = isbi_scores(gt, merged);
  EXPECT_LT(m.v_rand, 0.7);
  EXPECT_GT(m.mergers, 0);
  EXPECT_EQ(m.splits, 0);
}

TEST(WarpingError, CountsKnownByConstruction) {
  // One cell; the proposal cuts it with a vertical line: after warping one pixel of the cut is
  // left, and it is a split.
  const Tensor cell = paint(14, 16, {{2, 12, 2, 14, 1}});
  Tensor cut = paint(14, 16, {{2, 12, 2, 7, 1}, {2, 12, 8, 14, 1}}).to(kFloat32);
  WarpResult w = warp_ground_truth(cell, cut, 0.5);
  EXPECT_EQ(w.splits, 1);
  EXPECT_EQ(w.mergers, 0);
  EXPECT_EQ(w.mismatches, 1);
  // Two cells a membrane apart; the proposal bridges them with one pixel: one merger.
  const Tensor two = paint(14, 16, {{2, 12, 2, 7, 1}, {2, 12, 8, 14, 1}});
  Tensor bridge = paint(14, 16, {{2, 12, 2, 7, 1}, {2, 12, 8, 14, 1}, {6, 7, 7, 8, 1}}).to(kFloat32);
  w = warp_ground_truth(two, bridge, 0.5);
  EXPECT_EQ(w.mergers, 1);
  EXPECT_EQ(w.splits, 0);
  // A bridge three pixels tall: three merger pixels (the count is of pixels, as Fiji's).
  bridge = paint(14, 16, {{2, 12, 2, 7, 1}, {2, 12, 8, 14, 1}, {5, 8, 7, 8, 1}}).to(kFloat32);
  EXPECT_EQ(warp_ground_truth(two, bridge, 0.5).mergers, 3);
  // A hole in the proposal is warped away (holes are not splits or mergers).
  Tensor holed = paint(14, 16, {{2, 12, 2, 14, 1}, {6, 7, 6, 7, 0}}).to(kFloat32);
  w = warp_ground_truth(cell, holed, 0.5);
  EXPECT_EQ(w.mismatches, 0);
  EXPECT_EQ(sum(w.warped).item<int64_t>(), 10 * 12 - 1);
  // A missed cell and an extra one, neither counted: the missed one shrinks to the one pixel that
  // cannot go (an object deletion); no pixel of the extra one can be added alone (9 additions).
  const Tensor small = paint(14, 16, {{2, 5, 2, 5, 1}});
  Tensor elsewhere = paint(14, 16, {{9, 12, 9, 12, 1}}).to(kFloat32);
  w = warp_ground_truth(small, elsewhere, 0.5);
  EXPECT_EQ(w.object_deletions, 1);
  EXPECT_EQ(w.object_additions, 9);
  EXPECT_EQ(w.splits + w.mergers, 0);
  // The stack measure divides by all pixels and takes the best threshold.
  const IsbiScores s = isbi_scores(cell, cut);
  EXPECT_DOUBLE_EQ(s.warping_error, 1.0 / (14 * 16));
}

TEST(CtcMeasures, SegAndDetKnownByConstruction) {
  // R1, R2 merged by S1; R3 cut into two halves (neither covers more than half); R4 missed; an
  // extra object S4.
  const Tensor ref = paint(20, 20, {{0, 5, 0, 5, 1}, {0, 5, 6, 11, 2}, {10, 15, 0, 10, 3}, {16, 19, 16, 19, 4}});
  const Tensor pred = paint(20, 20, {{0, 5, 0, 11, 7}, {10, 15, 0, 5, 8}, {10, 15, 5, 10, 9}, {16, 19, 0, 3, 5}});
  const CtcScores c = ctc_scores({ref}, {pred});
  EXPECT_EQ(c.references, 4);
  EXPECT_EQ(c.matched, 2);
  EXPECT_DOUBLE_EQ(c.seg, (25.0 / 55 + 25.0 / 55) / 4);
  EXPECT_EQ(c.false_negatives, 2);
  EXPECT_EQ(c.false_positives, 3);
  EXPECT_EQ(c.splits, 1);
  EXPECT_DOUBLE_EQ(c.det, 1.0 - 28.0 / 40.0);
  // The extra object does not change SEG.
  const Tensor no_extra = paint(20, 20, {{0, 5, 0, 11, 7}, {10, 15, 0, 5, 8}, {10, 15, 5, 10, 9}});
  EXPECT_DOUBLE_EQ(ctc_scores({ref}, {no_extra}).seg, c.seg);
  EXPECT_DOUBLE_EQ(ctc_scores({ref}, {ref}).seg, 1.0);
  EXPECT_DOUBLE_EQ(ctc_scores({ref}, {ref}).det, 1.0);
}

TEST(CtcMeasures, EqualTheIndependentReference) {
  const nlohmann::json x = expected()["ctc"];
  const Tensor ref = load_npy(fixture("ctc_ref.npy")), pred = load_npy(fixture("ctc_pred.npy"));
  std::vector<Tensor> r, p;
  for (int64_t f = 0; f < ref.size(0); ++f) {
    r.push_back(ref.select(0, f).contiguous());
    p.push_back(pred.select(0, f).contiguous());
  }
  const CtcScores c = ctc_scores(r, p);
  EXPECT_NEAR(c.seg, x["seg"].get<double>(), 1e-12);
  EXPECT_NEAR(c.det, x["det"].get<double>(), 1e-12);
  EXPECT_EQ(c.references, x["references"].get<int64_t>());
  EXPECT_EQ(c.matched, x["matched"].get<int64_t>());
  EXPECT_EQ(c.false_negatives, x["false_negatives"].get<int64_t>());
  EXPECT_EQ(c.false_positives, x["false_positives"].get<int64_t>());
  EXPECT_EQ(c.splits, x["splits"].get<int64_t>());
}

TEST(ChallengeMeasures, BadInputIsAnError) {
  test::expect_error([] { isbi_scores(zeros({4, 4}, kInt64), zeros({4, 5})); }, {"isbi_scores", "same"});
  test::expect_error([] { isbi_scores(zeros({4, 4}, kInt64), zeros({4, 4}, kInt64)); }, {"probabilities"});
  test::expect_error([] { isbi_scores(zeros({4, 4}, kInt64), zeros({4, 4})); }, {"no foreground"});
  test::expect_error([] { ctc_scores({zeros({3, 3}, kInt64)}, {}); }, {"1 reference frames but 0"});
  test::expect_error([] { ctc_scores({zeros({3, 3}, kInt64)}, {zeros({3, 4}, kInt64)}); }, {"frame 0"});
}

}  // namespace
}  // namespace tessera

// Segmentation metrics against brute force.
#include "eval/segmentation.h"
#include "test_helpers.h"

namespace tessera {
namespace {

TEST(SegmentationMetrics, IouDicePixelErrorAgainstCounting) {
  Generator g(2);
  Tensor p = randint(0, 3, {17, 23}, kInt64, &g), t = randint(0, 3, {17, 23}, kInt64, &g);
  const std::vector<int64_t> pv = p.to_vector<int64_t>(), tv = t.to_vector<int64_t>();
  std::vector<double> iou = iou_per_class(p, t, 3), dice = dice_per_class(p, t, 3);
  for (int64_t c = 0; c < 3; ++c) {
    double in = 0, pc = 0, tc = 0;
    for (size_t i = 0; i < pv.size(); ++i) {
      in += pv[i] == c && tv[i] == c;
      pc += pv[i] == c;
      tc += tv[i] == c;
    }
    EXPECT_DOUBLE_EQ(iou[c], in / (pc + tc - in));
    EXPECT_DOUBLE_EQ(dice[c], 2 * in / (pc + tc));
  }
  double wrong = 0;
  for (size_t i = 0; i < pv.size(); ++i) wrong += pv[i] != tv[i];
  EXPECT_DOUBLE_EQ(pixel_error(p, t), wrong / static_cast<double>(pv.size()));
  EXPECT_TRUE(std::isnan(iou_per_class(zeros({2, 2}, kInt64), zeros({2, 2}, kInt64), 2)[1]));
  EXPECT_THROW(iou_per_class(p, t.narrow(0, 0, 3), 3), Error);
  EXPECT_THROW(iou_per_class(p, t, 2), Error);  // label 2 with 2 classes
}

TEST(SegmentationMetrics, RandErrorAgainstPairCounting) {
  Generator g(3);
  Tensor a = randint(0, 4, {9, 11}, kInt64, &g), b = randint(0, 3, {9, 11}, kInt64, &g);
  const std::vector<int64_t> av = a.to_vector<int64_t>(), bv = b.to_vector<int64_t>();
  double agree = 0, total = 0;
  for (size_t i = 0; i < av.size(); ++i)
    for (size_t j = i + 1; j < av.size(); ++j) {
      agree += (av[i] == av[j]) == (bv[i] == bv[j]);
      total += 1;
    }
  EXPECT_NEAR(rand_error(a, b), 1 - agree / total, 1e-12);
  EXPECT_EQ(rand_error(a, a), 0.0);
  EXPECT_EQ(rand_error(a, add(a, 5.0).to(kInt64)), 0.0);  // relabelling changes nothing
}

TEST(SegmentationMetrics, ConnectedComponentsAndMergedCells) {
  // Two true cells side by side; a prediction that fills the gap between them merges them.
  Tensor truth = zeros({6, 10}, kInt64);
  truth.narrow(0, 1, 4).narrow(1, 1, 3).fill_(1);
  truth.narrow(0, 1, 4).narrow(1, 5, 3).fill_(2);
  Tensor separated = gt(truth, 0.0);
  int64_t n = 0;
  Tensor cc = connected_components(separated, &n);
  EXPECT_EQ(n, 2);
  InstanceScore good = instance_score(separated, truth);
  EXPECT_EQ(good.matched, 2);
  EXPECT_EQ(good.merged, 0);
  EXPECT_DOUBLE_EQ(good.f1(), 1.0);
  Tensor merged = separated.clone();
  merged.narrow(0, 1, 4).narrow(1, 4, 1).fill_(true);
  InstanceScore bad = instance_score(merged, truth);
  EXPECT_EQ(bad.predicted, 1);
  EXPECT_EQ(bad.merged, 1);
  EXPECT_EQ(bad.matched, 0);
  // Diagonal neighbours are connected (8-connectivity).
  Tensor diag = zeros({3, 3}, kInt64);
  diag.select(0, 0).select(0, 0).fill_(1);
  diag.select(0, 1).select(0, 1).fill_(1);
  connected_components(diag, &n);
  EXPECT_EQ(n, 1);
  // ... and not with 4-connectivity (the challenges' cells), where an L still is one component.
  const Tensor four = connected_components(diag, &n, 4);
  EXPECT_EQ(n, 2);
  EXPECT_EQ(four.to_vector<int64_t>()[4], 2);
  diag.select(0, 0).select(0, 1).fill_(1);
  connected_components(diag, &n, 4);
  EXPECT_EQ(n, 1);
  EXPECT_THROW(connected_components(diag, &n, 6), Error);
}

}  // namespace
}  // namespace tessera

// Training-time assignment, as torchvision.models.detection._utils: Matcher gives each prediction
// (anchor or proposal) the ground-truth box it overlaps most, or a negative code below the
// thresholds; BalancedPositiveNegativeSampler draws a fixed-size, fixed-fraction sample of them.
#pragma once

#include <utility>

#include "autograd/ops.h"

namespace tessera {

class Matcher {
 public:
  static constexpr int64_t kBelowLowThreshold = -1;
  static constexpr int64_t kBetweenThresholds = -2;
  Matcher(double high_threshold, double low_threshold, bool allow_low_quality_matches = false);
  // quality [G, P] (IoU of each ground truth with each prediction) -> matches [P] int64: the index
  // of the matched ground truth, kBelowLowThreshold (IoU < low) or kBetweenThresholds (low <= IoU
  // < high). With allow_low_quality_matches, each ground truth's best predictions (all ties) keep
  // their match whatever its IoU. G = 0 is an Error (callers treat empty images themselves).
  Tensor operator()(const Tensor& quality) const;

 private:
  double high_, low_;
  bool low_quality_;
};

class BalancedPositiveNegativeSampler {
 public:
  BalancedPositiveNegativeSampler(int64_t batch_size_per_image, double positive_fraction);
  // labels [P] (int or float): >= 1 positive, 0 negative, < 0 ignored. Returns (positive mask,
  // negative mask) [P] bool: at most batch * fraction positives, the rest negatives, drawn
  // uniformly without replacement with `gen`.
  std::pair<Tensor, Tensor> operator()(const Tensor& labels, Generator* gen = nullptr) const;

 private:
  int64_t batch_;
  double fraction_;
};

}  // namespace tessera

// Matcher and BalancedPositiveNegativeSampler.
#include "models/matcher.h"

#include <algorithm>
#include <vector>

#include "core/grad_mode.h"
#include "core/random.h"

namespace tessera {

Matcher::Matcher(double high, double low, bool allow_low_quality_matches)
    : high_(high), low_(low), low_quality_(allow_low_quality_matches) {
  TS_CHECK(low <= high, "Matcher: low_threshold (", low, ") must not exceed high_threshold (", high, ")");
}

Tensor Matcher::operator()(const Tensor& quality) const {
  TS_CHECK(quality.dim() == 2, "Matcher: the quality matrix must be [G, P], got ", shape_str(quality.shape()));
  TS_CHECK(quality.size(0) > 0, "Matcher: no ground-truth boxes (an image without objects is matched by its caller)");
  NoGradGuard no_grad;
  auto [best, matches] = max(quality, 0);  // [P]: best IoU and the first ground truth reaching it
  Tensor all_matches = matches.clone();
  Tensor below = lt(best, low_), between = logical_and(ge(best, low_), lt(best, high_));
  matches = where(below, full_like(matches, static_cast<double>(kBelowLowThreshold)), matches);
  matches = where(between, full_like(matches, static_cast<double>(kBetweenThresholds)), matches);
  if (low_quality_) {
    // Predictions that are some ground truth's best (ties included) keep their original match.
    Tensor best_per_gt = amax(quality, {1}, true);  // [G, 1]
    Tensor is_best = gt(sum(eq(quality, best_per_gt).to(kInt64), {0}), 0.0);  // [P]
    matches = where(is_best, all_matches, matches);
  }
  return matches;
}

BalancedPositiveNegativeSampler::BalancedPositiveNegativeSampler(int64_t batch_size_per_image, double positive_fraction)
    : batch_(batch_size_per_image), fraction_(positive_fraction) {
  TS_CHECK(batch_ > 0 && fraction_ >= 0 && fraction_ <= 1, "BalancedPositiveNegativeSampler: need a positive batch and a ",
           "fraction in [0, 1], got ", batch_, " and ", fraction_);
}

std::pair<Tensor, Tensor> BalancedPositiveNegativeSampler::operator()(const Tensor& labels, Generator* gen) const {
  TS_CHECK(labels.dim() == 1, "BalancedPositiveNegativeSampler: labels must be [P], got ", shape_str(labels.shape()));
  NoGradGuard no_grad;
  const std::vector<double> l = labels.to(kCPU).to(kFloat64).to_vector<double>();
  std::vector<int64_t> pos, neg;
  for (size_t i = 0; i < l.size(); ++i) {
    if (l[i] >= 1) pos.push_back(static_cast<int64_t>(i));
    else if (l[i] == 0) neg.push_back(static_cast<int64_t>(i));
  }
  const int64_t num_pos = std::min<int64_t>(static_cast<int64_t>(pos.size()), static_cast<int64_t>(batch_ * fraction_));
  const int64_t num_neg = std::min<int64_t>(static_cast<int64_t>(neg.size()), batch_ - num_pos);
  Generator& g = gen ? *gen : default_generator();
  auto draw = [&](const std::vector<int64_t>& from, int64_t n) {
    std::vector<uint8_t> mask(l.size(), 0);
    if (n == 0) return mask;
    // A uniform random permutation: the order of independent uniform draws.
    const std::vector<int64_t> perm = argsort(rand({static_cast<int64_t>(from.size())}, kFloat64, &g)).to_vector<int64_t>();
    for (int64_t k = 0; k < n; ++k) mask[static_cast<size_t>(from[static_cast<size_t>(perm[static_cast<size_t>(k)])])] = 1;
    return mask;
  };
  const int64_t P = static_cast<int64_t>(l.size());
  Tensor pos_mask = from_vector(draw(pos, num_pos), {P}).to(kBool).to(labels.device());
  Tensor neg_mask = from_vector(draw(neg, num_neg), {P}).to(kBool).to(labels.device());
  return {pos_mask, neg_mask};
}

}  // namespace tessera

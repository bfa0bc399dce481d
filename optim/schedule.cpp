// Learning-rate schedules.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tessera {

Schedule Schedule::operator*(const Schedule& other) const {
  auto a = factor_, b = other.factor_;
  return Schedule([a, b](int64_t t) { return a(t) * b(t); });
}

Schedule Schedule::constant() {
  return Schedule([](int64_t) { return 1.0; });
}

Schedule Schedule::warmup_linear(int64_t total_iters, double start_factor) {
  TS_CHECK(total_iters >= 0 && start_factor > 0 && start_factor <= 1, "warmup_linear: need total_iters >= 0 and ",
           "start_factor in (0, 1]");
  return Schedule([=](int64_t t) {
    if (t >= total_iters) return 1.0;
    return start_factor + (1.0 - start_factor) * static_cast<double>(t) / static_cast<double>(total_iters);
  });
}

Schedule Schedule::multi_step(std::vector<int64_t> milestones, double gamma) {
  std::sort(milestones.begin(), milestones.end());
  return Schedule([milestones, gamma](int64_t t) {
    const auto passed = std::upper_bound(milestones.begin(), milestones.end(), t) - milestones.begin();
    return std::pow(gamma, static_cast<double>(passed));
  });
}

Schedule Schedule::cosine(int64_t t_max, double min_factor) {
  TS_CHECK(t_max > 0, "cosine: t_max must be positive");
  return Schedule([=](int64_t t) {
    // Not clamped at t_max: PyTorch's closed form keeps going (it rises again after t_max).
    return min_factor + (1.0 - min_factor) * (1.0 + std::cos(M_PI * static_cast<double>(t) / static_cast<double>(t_max))) / 2.0;
  });
}

}  // namespace tessera

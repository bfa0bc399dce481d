// Learning-rate schedules as multipliers of the base rate at a given iteration, composable by
// product: Schedule::warmup_linear(1000, 0.001) * Schedule::multi_step({60000, 80000}, 0.1) is
// torchvision's detection recipe (LinearLR then MultiStepLR, chained).
#pragma once

#include <functional>
#include <vector>

namespace tessera {

class Schedule {
 public:
  explicit Schedule(std::function<double(int64_t)> factor) : factor_(std::move(factor)) {}
  double operator()(int64_t iteration) const { return factor_(iteration); }
  double lr(double base_lr, int64_t iteration) const { return base_lr * factor_(iteration); }
  Schedule operator*(const Schedule& other) const;

  static Schedule constant();
  // torch.optim.lr_scheduler.LinearLR(start_factor, end_factor=1, total_iters).
  static Schedule warmup_linear(int64_t total_iters, double start_factor);
  // MultiStepLR: gamma to the number of milestones passed.
  static Schedule multi_step(std::vector<int64_t> milestones, double gamma);
  // CosineAnnealingLR's closed form: min + (1 - min) (1 + cos(pi t / t_max)) / 2 (periodic after t_max, as PyTorch).
  static Schedule cosine(int64_t t_max, double min_factor = 0.0);

 private:
  std::function<double(int64_t)> factor_;
};

}  // namespace tessera

// GradScaler (torch.amp.GradScaler's rule: _amp_foreach_non_finite_check_and_unscale_ and
// _amp_update_scale_).
#include "optim/grad_scaler.h"

#include <cmath>
#include <vector>

namespace tessera {

GradScaler::GradScaler(GradScalerOptions opts) : opts_(opts), scale_(static_cast<float>(opts.init_scale)) {
  TS_CHECK(opts.init_scale > 0 && std::isfinite(opts.init_scale), "GradScaler: init_scale must be positive, got ",
           opts.init_scale);
  TS_CHECK(opts.growth_factor > 1.0, "GradScaler: growth_factor must be above 1, got ", opts.growth_factor);
  TS_CHECK(opts.backoff_factor > 0.0 && opts.backoff_factor < 1.0, "GradScaler: backoff_factor must be in (0, 1), got ",
           opts.backoff_factor);
  TS_CHECK(opts.growth_interval > 0, "GradScaler: growth_interval must be positive, got ", opts.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const {
  TS_CHECK(loss.defined(), "GradScaler::scale: the loss is undefined");
  if (!opts_.enabled) return loss;
  return mul(loss, static_cast<double>(scale_));
}

void GradScaler::unscale_(Optimizer& optimizer) {
  if (!opts_.enabled) return;
  TS_CHECK(!unscaled_, "GradScaler::unscale_: already called since the last update()");
  const float inv = static_cast<float>(1.0 / static_cast<double>(scale_));
  NoGradGuard no_grad;
  // Non-finite check on the scaled values, then the multiply in place (PyTorch's order). max |g|
  // is NaN when any value is NaN, inf when any is inf, else finite; the per-gradient maxima stay on
  // their device and are read once (one host sync per step, not one per parameter).
  std::vector<Tensor> peaks;
  for (const Tensor& p : optimizer.params()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    peaks.push_back(amax(abs(g)).to(kFloat32).reshape({1}));
    mul_(g, static_cast<double>(inv));
  }
  found_inf_ = !peaks.empty() && !std::isfinite(amax(cat(peaks, 0)).item<double>());
  unscaled_ = true;
}

bool GradScaler::step(Optimizer& optimizer) {
  if (!opts_.enabled) {
    optimizer.step();
    return true;
  }
  if (!unscaled_) unscale_(optimizer);
  if (found_inf_) return false;
  optimizer.step();
  return true;
}

void GradScaler::update() {
  if (!opts_.enabled) return;
  if (found_inf_) {
    scale_ = scale_ * static_cast<float>(opts_.backoff_factor);
    growth_tracker_ = 0;
  } else if (growth_tracker_ + 1 == opts_.growth_interval) {
    const float grown = scale_ * static_cast<float>(opts_.growth_factor);
    if (std::isfinite(grown)) scale_ = grown;  // PyTorch keeps the old scale rather than inf
    growth_tracker_ = 0;
  } else {
    ++growth_tracker_;
  }
  unscaled_ = false;
  found_inf_ = false;
}

std::map<std::string, Tensor> GradScaler::state_tensors() const {
  return {{"scale", full({}, static_cast<double>(scale_), kFloat32)},
          {"growth_tracker", full({}, static_cast<double>(growth_tracker_), kInt64)}};
}

void GradScaler::load_state_tensors(const std::map<std::string, Tensor>& state) {
  auto get = [&](const char* key, DType d) {
    auto it = state.find(key);
    TS_CHECK(it != state.end(), "GradScaler::load_state_tensors: '", key, "' is missing");
    TS_CHECK(it->second.numel() == 1 && it->second.dtype() == d, "GradScaler::load_state_tensors: '", key,
             "' must be one ", dtype_name(d), " value, got ", it->second.str());
    return it->second;
  };
  const float s = get("scale", kFloat32).item<float>();
  TS_CHECK(s > 0 && std::isfinite(s), "GradScaler::load_state_tensors: the scale must be positive and finite, got ", s);
  const int64_t t = get("growth_tracker", kInt64).item<int64_t>();
  TS_CHECK(t >= 0 && t < opts_.growth_interval, "GradScaler::load_state_tensors: growth_tracker ", t, " is outside [0, ",
           opts_.growth_interval, ")");
  scale_ = s;
  growth_tracker_ = t;
  unscaled_ = found_inf_ = false;
}

}  // namespace tessera

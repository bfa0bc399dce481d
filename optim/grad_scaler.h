// GradScaler: torch.cuda.amp.GradScaler's loss scaling for float16 training (bfloat16 has
// float32's range and needs none). The loss is multiplied by the scale before backward, so that
// small gradients survive float16; before the step the gradients are divided by it again, and a
// step whose gradients hold an inf or NaN is skipped and the scale halved. After growth_interval
// clean steps in a row the scale doubles. PyTorch's defaults and rule:
//   GradScaler scaler;                       // scale 2^16
//   scaler.scale(loss).backward();
//   scaler.unscale_(opt);                    // optional: clip the true gradients here
//   scaler.step(opt);                        // opt.step() unless an inf/NaN was found
//   scaler.update();
// The scale is kept as a float32 number and the arithmetic is PyTorch's (the inverse scale is
// 1 / scale in double, rounded to float32), so runs resumed from state_tensors() are
// bit-identical.
#pragma once

#include <map>
#include <string>

#include "optim/optimizer.h"

namespace tessera {

struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;  // disabled: scale() returns the loss, step() steps, update() does nothing
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions opts = {});
  // loss * scale (in the loss's dtype, as PyTorch).
  Tensor scale(const Tensor& loss) const;
  // Divides the optimizer's gradients by the scale, in place, and records whether any is inf/NaN.
  // At most once between two update() calls.
  void unscale_(Optimizer& optimizer);
  // unscale_ if not done yet, then optimizer.step() unless an inf/NaN was found. Returns whether
  // it stepped.
  bool step(Optimizer& optimizer);
  // Halves the scale (and restarts the count) after a skipped step; doubles it after
  // growth_interval clean steps in a row.
  void update();

  double get_scale() const { return static_cast<double>(scale_); }
  int64_t growth_tracker() const { return growth_tracker_; }
  bool found_inf() const { return found_inf_; }
  bool enabled() const { return opts_.enabled; }
  // "scale" (float32) and "growth_tracker" (int64), for checkpoints.
  std::map<std::string, Tensor> state_tensors() const;
  void load_state_tensors(const std::map<std::string, Tensor>& state);

 private:
  GradScalerOptions opts_;
  float scale_;
  int64_t growth_tracker_ = 0;
  bool unscaled_ = false, found_inf_ = false;
};

}  // namespace tessera

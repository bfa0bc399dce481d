// Autocast: PyTorch's torch.autocast for tessera's ops. Inside an AutocastGuard for a device type,
// ops on tensors of that device choose their own precision:
//   low  (the guard's dtype, bfloat16 or float16): conv2d (and its fused forms), conv_transpose2d,
//        matmul, mm, bmm, linear. Their floating inputs are cast to the low dtype; the products
//        accumulate in float32 and are rounded once.
//   fp32: losses (cross_entropy, nll_loss, pixel_weighted_cross_entropy,
//        binary_cross_entropy_with_logits, l1_loss, smooth_l1_loss), softmax, log_softmax, exp,
//        log, log1p, pow, rsqrt, sum, cumsum, group_norm, interpolate: half inputs are cast to
//        float32 and the result is float32.
//   always float32 (autocast or not, as torchvision and detectron2 force them): roi_align,
//        multi_scale_roi_align, nms and the box coder take half inputs in float32.
//   every other op (batch_norm, relu, max_pool2d, add, ...) runs in its inputs' dtype, promoted as
//        usual (a float32 and a bfloat16 operand give float32).
// This is the list of PyTorch's CUDA autocast (aten/src/ATen/autocast_mode.cpp) with
// interpolation added to fp32; PyTorch 1.13's CPU autocast differs in running conv_transpose2d in
// float32 and softmax, exp, sum, group_norm and interpolation in their input's dtype.
//
// float64 tensors and integer tensors are never cast. Parameters stay float32: the casts are
// differentiable, so their gradients arrive in float32. The state is per thread, as in PyTorch.
//
//   { AutocastGuard amp(kBFloat16); Tensor logits = net.forward(x); Tensor loss = cross_entropy(logits, y); }
//   loss.backward();
#pragma once

#include <optional>

#include "core/tensor.h"

namespace tessera {

class AutocastGuard {
 public:
  // dtype: kBFloat16 or kFloat16. enabled = false turns autocast off for the scope (nested use).
  explicit AutocastGuard(DType dtype, DeviceType device = DeviceType::CPU, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DeviceType device_;
  bool prev_enabled_;
  DType prev_dtype_;
};

bool autocast_enabled(DeviceType device = DeviceType::CPU);
DType autocast_dtype(DeviceType device = DeviceType::CPU);  // kBFloat16 (CPU) / kFloat16 (CUDA) unless set

namespace autocast {

// Whether autocast applies to an op whose first floating input is t (defined, floating, not
// float64, on a device type whose autocast is on).
bool applies(const Tensor& t);
// t cast to d when it is floating and not float64; anything else unchanged.
Tensor cast(const Tensor& t, DType d);
// Turns autocast off on this thread for its scope: an op that has cast its inputs runs the rest
// of its work (and the ops it is made of) as written.
class Suspend {
 public:
  Suspend();
  ~Suspend();
  Suspend(const Suspend&) = delete;
  Suspend& operator=(const Suspend&) = delete;

 private:
  bool prev_[2];
};

}  // namespace autocast
}  // namespace tessera

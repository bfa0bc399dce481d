// batch_norm (training and evaluation, running statistics as PyTorch) and the frozen form.
#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "kernels/batch_norm.h"

namespace tessera {

namespace {

void check_channel_tensor(const char* op, const char* name, const Tensor& t, const Tensor& x, int64_t C) {
  if (!t.defined()) return;
  TS_CHECK(t.dim() == 1 && t.size(0) == C, op, ": ", name, " must have shape [", C, "], got ", shape_str(t.shape()));
  TS_CHECK(t.dtype() == x.dtype() && t.device() == x.device(), op, ": ", name, " must be ", dtype_name(x.dtype()),
           " on ", x.device(), ", got ", t.str());
}

struct Layout {
  int64_t N, C, S;
};

Layout layout_of(const char* op, const Tensor& x) {
  TS_CHECK(x.defined(), op, ": the input is undefined");
  TS_CHECK(x.dim() >= 2, op, ": expected an input of at least 2 dimensions [N, C, ...], got shape ", shape_str(x.shape()));
  detail::check_floating(op, x);
  Layout l{x.size(0), x.size(1), 1};
  for (int64_t d = 2; d < x.dim(); ++d) l.S *= x.size(d);
  return l;
}

}  // namespace

Tensor batch_norm(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  TS_CHECK(x_in.defined(), "batch_norm: the input is undefined");
  // A half input runs in float32. Its parameters and statistics may be float32 (autocast leaves a
  // BatchNorm2d's float32) or the half (updated through float32 copies).
  if (is_half(x_in.dtype())) {
    Tensor rm = detail::widen_half(running_mean), rv = detail::widen_half(running_var);
    Tensor y = batch_norm(detail::widen_half(x_in), rm, rv, detail::widen_half(weight), detail::widen_half(bias), training,
                          momentum, eps);
    if (running_mean.defined() && is_half(running_mean.dtype()) && training) {
      NoGradGuard no_grad;
      raw::copy_(running_mean, rm);
      raw::copy_(running_var, rv);
    }
    return y.to(x_in.dtype());
  }
  const Layout l = layout_of("batch_norm", x_in);
  check_channel_tensor("batch_norm", "running_mean", running_mean, x_in, l.C);
  check_channel_tensor("batch_norm", "running_var", running_var, x_in, l.C);
  check_channel_tensor("batch_norm", "weight", weight, x_in, l.C);
  check_channel_tensor("batch_norm", "bias", bias, x_in, l.C);
  TS_CHECK(running_mean.defined() == running_var.defined(), "batch_norm: give both running statistics or neither");
  TS_CHECK(eps > 0, "batch_norm: eps must be positive, got ", eps);
  const bool use_batch_stats = training || !running_mean.defined();
  const int64_t M = l.N * l.S;
  TS_CHECK(!training || M > 1, "batch_norm: expected more than 1 value per channel when training, got input of shape ",
           shape_str(x_in.shape()));
  TS_CHECK(M > 0 || !use_batch_stats, "batch_norm: the input is empty");

  Tensor x = raw::contiguous(x_in);
  const Device dev = x.device();
  const DType dt = x.dtype();
  Tensor mean, invstd, scale, shift;
  {
    NoGradGuard no_grad;  // the per-channel coefficients are internal: the node below owns the gradient
    if (use_batch_stats) {
      Tensor s1 = raw::empty({l.C}, dt, dev), s2 = raw::empty({l.C}, dt, dev);
      channel_moments_kernel(s1, Tensor(), x, Tensor(), Tensor(), Tensor(), l.N, l.C, l.S);
      mean = div(s1, static_cast<double>(M));
      channel_moments_kernel(s2, s2, x, x, mean, mean, l.N, l.C, l.S);  // s2 = sum (x - mean)^2
      Tensor var = div(s2, static_cast<double>(M));
      invstd = rsqrt(add(var, eps));
      if (training && running_mean.defined()) {
        TS_CHECK(!running_mean.requires_grad() && !running_var.requires_grad(),
                 "batch_norm: running statistics must not require grad");
        Tensor rm = running_mean, rv = running_var;
        mul_(rm, 1.0 - momentum);
        add_(rm, mean, momentum);
        mul_(rv, 1.0 - momentum);
        add_(rv, var, momentum * static_cast<double>(M) / static_cast<double>(M - 1));  // unbiased
      }
    } else {
      mean = running_mean.detach();
      invstd = rsqrt(add(running_var, eps));
    }
    scale = weight.defined() ? mul(weight.detach(), invstd) : invstd;
    shift = bias.defined() ? sub(bias.detach(), mul(mean, scale)) : neg(mul(mean, scale));
  }
  Tensor y = raw::empty(x.shape(), dt, dev);
  channel_affine_kernel(y, x, Tensor(), scale, Tensor(), shift, l.C, l.S);
  if (needs_grad({&x_in, &weight, &bias})) {
    const bool need_x = x_in.requires_grad(), need_w = weight.defined() && weight.requires_grad(),
               need_b = bias.defined() && bias.requires_grad();
    record("BatchNormBackward", {x_in, weight, bias}, {y},
           [sx = SavedTensor(x), sm = SavedTensor(mean), si = SavedTensor(invstd), sw = SavedTensor(weight), l, M,
            use_batch_stats, need_x, need_w, need_b](std::vector<Tensor>& grads) {
             Tensor g = raw::contiguous(grads[0]);
             Tensor x = sx.get(), mean = sm.get(), invstd = si.get(), w = sw.get();
             Tensor s1 = raw::empty({l.C}, g.dtype(), g.device()), s2 = raw::empty({l.C}, g.dtype(), g.device());
             channel_moments_kernel(s1, s2, g, x, Tensor(), mean, l.N, l.C, l.S);  // sum g, sum g (x - mean)
             Tensor gx, gw, gb;
             if (need_w) gw = mul(s2, invstd);  // sum g * xhat
             if (need_b) gb = s1;
             if (need_x) {
               Tensor k1 = w.defined() ? mul(w, invstd) : invstd;
               gx = raw::empty(g.shape(), g.dtype(), g.device());
               if (use_batch_stats) {
                 const double inv_m = 1.0 / static_cast<double>(M);
                 Tensor c2 = mul(mul(mul(k1, invstd), invstd), mul(s2, inv_m));  // w invstd^3 * mean(g (x - mean))
                 Tensor k2 = neg(c2);
                 Tensor k3 = sub(mul(mean, c2), mul(k1, mul(s1, inv_m)));
                 channel_affine_kernel(gx, g, x, k1, k2, k3, l.C, l.S);
               } else {
                 channel_affine_kernel(gx, g, Tensor(), k1, Tensor(), zeros_like(k1), l.C, l.S);
               }
             }
             return std::vector<Tensor>{gx, gw, gb};
           });
  }
  return y;
}

Tensor frozen_batch_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                         const Tensor& running_var, double eps) {
  if (x_in.defined() && is_half(x_in.dtype()))
    return frozen_batch_norm(detail::widen_half(x_in), detail::widen_half(weight), detail::widen_half(bias),
                             detail::widen_half(running_mean), detail::widen_half(running_var), eps)
        .to(x_in.dtype());
  const Layout l = layout_of("frozen_batch_norm", x_in);
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"weight", &weight}, {"bias", &bias},
                         {"running_mean", &running_mean}, {"running_var", &running_var}}) {
    TS_CHECK(t->defined(), "frozen_batch_norm: ", name, " is undefined");
    check_channel_tensor("frozen_batch_norm", name, *t, x_in, l.C);
  }
  Tensor scale, shift;
  {
    NoGradGuard no_grad;
    scale = mul(weight, rsqrt(add(running_var, eps)));
    shift = sub(bias, mul(running_mean, scale));
  }
  Tensor x = raw::contiguous(x_in);
  Tensor y = raw::empty(x.shape(), x.dtype(), x.device());
  channel_affine_kernel(y, x, Tensor(), scale, Tensor(), shift, l.C, l.S);
  if (needs_grad({&x_in})) {
    record("FrozenBatchNormBackward", {x_in}, {y}, [ss = SavedTensor(scale), l](std::vector<Tensor>& grads) {
      Tensor g = raw::contiguous(grads[0]);
      Tensor gx = raw::empty(g.shape(), g.dtype(), g.device());
      Tensor scale = ss.get();
      channel_affine_kernel(gx, g, Tensor(), scale, Tensor(), zeros_like(scale), l.C, l.S);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  TS_CHECK(x.defined() && x.dim() >= 2, "group_norm: expected an input [N, C, ...], got ",
           x.defined() ? shape_str(x.shape()) : "undefined");
  detail::check_floating("group_norm", x);
  TS_AUTOCAST_F32(x, group_norm(TS_F32(x), num_groups, TS_F32(weight), TS_F32(bias), eps));
  if (is_half(x.dtype()))  // statistics and normalisation in float32, the result rounded once
    return group_norm(detail::widen_half(x), num_groups, detail::widen_half(weight), detail::widen_half(bias), eps)
        .to(x.dtype());
  const int64_t N = x.size(0), C = x.size(1);
  TS_CHECK(num_groups > 0 && C % num_groups == 0, "group_norm: ", C, " channels cannot be split into ", num_groups, " groups");
  Shape per_channel(static_cast<size_t>(x.dim()), 1);
  per_channel[1] = C;
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"weight", &weight}, {"bias", &bias}})
    if (t->defined()) {
      TS_CHECK(t->dim() == 1 && t->size(0) == C, "group_norm: ", name, " must have shape [", C, "], got ", shape_str(t->shape()));
      TS_CHECK(t->dtype() == x.dtype() && t->device() == x.device(), "group_norm: ", name, " must be ", dtype_name(x.dtype()),
               " on ", x.device(), ", got ", t->str());
    }
  if (x.numel() == 0) return x.clone();
  const Tensor xr = x.reshape({N, num_groups, -1});
  const Tensor centred = sub(xr, mean(xr, {2}, true));
  const Tensor inv_std = rsqrt(add(mean(square(centred), {2}, true), eps));
  Tensor y = mul(centred, inv_std).reshape(x.shape());
  if (weight.defined()) y = mul(y, weight.reshape(per_channel));
  if (bias.defined()) y = add(y, bias.reshape(per_channel));
  return y;
}

}  // namespace tessera

// conv2d and conv_transpose2d: argument checks, geometry, and backward rules. A transposed
// convolution is the backward-input of the convolution that maps its output back to its input.
#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"

namespace tessera {

namespace {

void check_conv_args(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, Int2 stride, Int2 padding,
                     Int2 dilation, int64_t groups) {
  TS_CHECK(x.defined() && w.defined(), op, ": input and weight must be defined");
  TS_CHECK(x.dim() == 4, op, ": expected a 4-D input [N, C, H, W], got shape ", shape_str(x.shape()));
  TS_CHECK(w.dim() == 4, op, ": expected a 4-D weight, got shape ", shape_str(w.shape()));
  detail::check_floating(op, x);
  TS_CHECK(w.dtype() == x.dtype(), op, ": weight is ", dtype_name(w.dtype()), " but input is ", dtype_name(x.dtype()));
  TS_CHECK(w.device() == x.device(), op, ": weight is on ", w.device(), " but input is on ", x.device());
  if (b.defined()) {
    TS_CHECK(b.dtype() == x.dtype() && b.device() == x.device(), op, ": bias must be ", dtype_name(x.dtype()), " on ",
             x.device(), ", got ", b.str());
  }
  TS_CHECK(groups >= 1, op, ": groups must be positive, got ", groups);
  TS_CHECK(stride.h > 0 && stride.w > 0, op, ": stride must be positive, got (", stride.h, ", ", stride.w, ")");
  TS_CHECK(padding.h >= 0 && padding.w >= 0, op, ": padding must be non-negative, got (", padding.h, ", ", padding.w, ")");
  TS_CHECK(dilation.h > 0 && dilation.w > 0, op, ": dilation must be positive, got (", dilation.h, ", ", dilation.w, ")");
}

Tensor add_bias(Tensor out, const Tensor& b) {
  if (b.defined()) elementwise_binary(BinaryOp::Add, out, out, raw::reshape(b, {1, b.numel(), 1, 1}));
  return out;
}

Tensor bias_grad(const Tensor& g) { return sum(g, {0, 2, 3}); }

// relu: the output is max(0, conv + bias) (conv2d_relu), computed in the same pass; the backward
// masks the incoming gradient with output > 0 (ReLU's rule) before the convolution's. scale
// (conv2d_scale_shift): conv * scale + bias; a constant, whose factor the backward applies to the
// gradient before the convolution's (the bias's gradient is taken before it).
Tensor conv2d_impl(const char* op, const Tensor& x_in, const Tensor& w_in, const Tensor& b, Int2 stride, Int2 padding,
                   Int2 dilation, int64_t groups, bool relu, const Tensor& scale = Tensor()) {
  check_conv_args(op, x_in, w_in, b, stride, padding, dilation, groups);
  if (detail::widens_on_cpu(x_in)) {  // CUDA: cuDNN's half kernels (float32 compute)
    detail::note_half_through_float32(op, x_in);
    return conv2d_impl(op, detail::widen_half(x_in), detail::widen_half(w_in), detail::widen_half(b), stride, padding,
                       dilation, groups, relu, detail::widen_half(scale))
        .to(x_in.dtype());
  }
  if (scale.defined()) {
    TS_CHECK(scale.dtype() == x_in.dtype() && scale.device() == x_in.device(), op, ": scale must be ", dtype_name(x_in.dtype()),
             " on ", x_in.device(), ", got ", scale.str());
    TS_CHECK(scale.dim() == 1 && scale.size(0) == w_in.size(0), op, ": scale must have shape [", w_in.size(0), "], got ",
             shape_str(scale.shape()));
    TS_CHECK(!scale.requires_grad(), op, ": scale is a constant (no gradient is computed for it); detach it");
  }
  Conv2dGeometry g{};
  g.N = x_in.size(0), g.C = x_in.size(1), g.H = x_in.size(2), g.W = x_in.size(3);
  g.O = w_in.size(0), g.kh = w_in.size(2), g.kw = w_in.size(3);
  g.stride_h = stride.h, g.stride_w = stride.w, g.pad_h = padding.h, g.pad_w = padding.w;
  g.dil_h = dilation.h, g.dil_w = dilation.w, g.groups = groups;
  TS_CHECK(g.C % groups == 0 && g.O % groups == 0, op, ": channels in (", g.C, ") and out (", g.O,
           ") must be divisible by groups (", groups, ")");
  TS_CHECK(w_in.size(1) == g.C / groups, op, ": weight ", shape_str(w_in.shape()), " expects ", w_in.size(1) * groups,
           " input channels, the input has ", g.C);
  if (b.defined()) TS_CHECK(b.dim() == 1 && b.size(0) == g.O, op, ": bias must have shape [", g.O, "], got ", shape_str(b.shape()));
  const int64_t eff_h = g.dil_h * (g.kh - 1) + 1, eff_w = g.dil_w * (g.kw - 1) + 1;
  TS_CHECK(g.H + 2 * g.pad_h >= eff_h && g.W + 2 * g.pad_w >= eff_w, op, ": the padded input (", g.H + 2 * g.pad_h,
           " x ", g.W + 2 * g.pad_w, ") is smaller than the dilated kernel (", eff_h, " x ", eff_w, ")");
  g.Ho = (g.H + 2 * g.pad_h - eff_h) / g.stride_h + 1;
  g.Wo = (g.W + 2 * g.pad_w - eff_w) / g.stride_w + 1;

  Tensor x = raw::contiguous(x_in), w = raw::contiguous(w_in);
  Tensor out = raw::empty({g.N, g.O, g.Ho, g.Wo}, x.dtype(), x.device());
  conv2d_forward_kernel(out, x, w, b, g, relu, scale);
  if (needs_grad({&x_in, &w_in, &b})) {
    const bool need_x = x_in.requires_grad(), need_w = w_in.requires_grad(), need_b = b.defined() && b.requires_grad();
    record(relu ? "Conv2dReluBackward" : "Conv2dBackward", {x_in, w_in, b}, {out},
           [sx = SavedTensor(need_w ? x : Tensor()), sw = SavedTensor(need_x ? w : Tensor()), sy = SavedTensor(relu ? out : Tensor()),
            ss = SavedTensor(scale.defined() ? raw::contiguous(scale) : Tensor()), g, need_x, need_w, need_b](std::vector<Tensor>& grads) {
             Tensor go = raw::contiguous(grads[0]);
             if (sy.defined()) {
               Tensor masked = raw::empty(go.shape(), go.dtype(), go.device());
               elementwise_binary(BinaryOp::ReluBackward, masked, go, sy.get());
               go = masked;
             }
             Tensor gb;
             if (need_b) gb = bias_grad(go);
             if (ss.defined() && (need_x || need_w)) {
               Tensor scaled = raw::empty(go.shape(), go.dtype(), go.device());
               elementwise_binary(BinaryOp::Mul, scaled, go, raw::reshape(ss.get(), {1, g.O, 1, 1}));
               go = scaled;
             }
             Tensor gx, gw;
             if (need_x) {
               gx = zeros({g.N, g.C, g.H, g.W}, options(go.dtype(), go.device()));
               conv2d_backward_input_kernel(gx, go, sw.get(), g);
             }
             if (need_w) {
               gw = raw::empty({g.O, g.Cg(), g.kh, g.kw}, go.dtype(), go.device());
               conv2d_backward_weight_kernel(gw, go, sx.get(), g);
             }
             return std::vector<Tensor>{gx, gw, gb};
           });
  }
  return out;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Int2 stride, Int2 padding, Int2 dilation, int64_t groups) {
  TS_AUTOCAST_LOW(x, conv2d(TS_LOW(x), TS_LOW(w), TS_LOW(b), stride, padding, dilation, groups));
  return conv2d_impl("conv2d", x, w, b, stride, padding, dilation, groups, false);
}
Tensor conv2d_relu(const Tensor& x, const Tensor& w, const Tensor& b, Int2 stride, Int2 padding, Int2 dilation,
                   int64_t groups) {
  TS_AUTOCAST_LOW(x, conv2d_relu(TS_LOW(x), TS_LOW(w), TS_LOW(b), stride, padding, dilation, groups));
  return conv2d_impl("conv2d_relu", x, w, b, stride, padding, dilation, groups, true);
}

Tensor conv2d_scale_shift(const Tensor& x, const Tensor& w, const Tensor& scale, const Tensor& shift, bool relu, Int2 stride,
                          Int2 padding, Int2 dilation, int64_t groups) {
  TS_CHECK(scale.defined() && shift.defined(), "conv2d_scale_shift: scale and shift must be defined");
  TS_AUTOCAST_LOW(x, conv2d_scale_shift(TS_LOW(x), TS_LOW(w), TS_LOW(scale), TS_LOW(shift), relu, stride, padding, dilation,
                                        groups));
  return conv2d_impl("conv2d_scale_shift", x, w, shift, stride, padding, dilation, groups, relu, scale);
}

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b, Int2 stride, Int2 padding,
                        Int2 output_padding, int64_t groups, Int2 dilation) {
  TS_AUTOCAST_LOW(x_in, conv_transpose2d(TS_LOW(x_in), TS_LOW(w_in), TS_LOW(b), stride, padding, output_padding, groups,
                                          dilation));
  check_conv_args("conv_transpose2d", x_in, w_in, b, stride, padding, dilation, groups);
  if (detail::widens_on_cpu(x_in)) {
    detail::note_half_through_float32("conv_transpose2d", x_in);
    return conv_transpose2d(detail::widen_half(x_in), detail::widen_half(w_in), detail::widen_half(b), stride, padding,
                            output_padding, groups, dilation)
        .to(x_in.dtype());
  }
  const int64_t cin = x_in.size(1);
  TS_CHECK(w_in.size(0) == cin, "conv_transpose2d: weight ", shape_str(w_in.shape()), " expects ", w_in.size(0),
           " input channels, the input has ", cin);
  TS_CHECK(cin % groups == 0, "conv_transpose2d: input channels (", cin, ") must be divisible by groups (", groups, ")");
  TS_CHECK(output_padding.h >= 0 && output_padding.w >= 0 &&
               (output_padding.h < stride.h || output_padding.h < dilation.h) &&
               (output_padding.w < stride.w || output_padding.w < dilation.w),
           "conv_transpose2d: output_padding (", output_padding.h, ", ", output_padding.w,
           ") must be smaller than stride or dilation");
  // The convolution whose backward-input this is: its input is our output, its output our input.
  Conv2dGeometry g{};
  g.N = x_in.size(0), g.O = cin, g.Ho = x_in.size(2), g.Wo = x_in.size(3);
  g.C = w_in.size(1) * groups, g.kh = w_in.size(2), g.kw = w_in.size(3);
  g.stride_h = stride.h, g.stride_w = stride.w, g.pad_h = padding.h, g.pad_w = padding.w;
  g.dil_h = dilation.h, g.dil_w = dilation.w, g.groups = groups;
  g.H = (g.Ho - 1) * g.stride_h - 2 * g.pad_h + g.dil_h * (g.kh - 1) + output_padding.h + 1;
  g.W = (g.Wo - 1) * g.stride_w - 2 * g.pad_w + g.dil_w * (g.kw - 1) + output_padding.w + 1;
  TS_CHECK(g.H > 0 && g.W > 0, "conv_transpose2d: the output size (", g.H, " x ", g.W, ") is not positive");
  if (b.defined()) TS_CHECK(b.dim() == 1 && b.size(0) == g.C, "conv_transpose2d: bias must have shape [", g.C, "], got ",
                            shape_str(b.shape()));

  Tensor x = raw::contiguous(x_in), w = raw::contiguous(w_in);
  Tensor out = zeros({g.N, g.C, g.H, g.W}, options(x.dtype(), x.device()));
  conv2d_backward_input_kernel(out, x, w, g);
  add_bias(out, b);
  if (needs_grad({&x_in, &w_in, &b})) {
    const bool need_x = x_in.requires_grad(), need_w = w_in.requires_grad(), need_b = b.defined() && b.requires_grad();
    record("ConvTranspose2dBackward", {x_in, w_in, b}, {out},
           [sx = SavedTensor(need_w ? x : Tensor()), sw = SavedTensor(need_x ? w : Tensor()), g, need_x, need_w,
            need_b](std::vector<Tensor>& grads) {
             Tensor go = raw::contiguous(grads[0]);
             Tensor gx, gw, gb;
             if (need_x) {
               gx = raw::empty({g.N, g.O, g.Ho, g.Wo}, go.dtype(), go.device());
               conv2d_forward_kernel(gx, go, sw.get(), Tensor(), g);
             }
             if (need_w) {
               gw = raw::empty({g.O, g.Cg(), g.kh, g.kw}, go.dtype(), go.device());
               conv2d_backward_weight_kernel(gw, sx.get(), go, g);
             }
             if (need_b) gb = bias_grad(go);
             return std::vector<Tensor>{gx, gw, gb};
           });
  }
  return out;
}

}  // namespace tessera

// max_pool2d with PyTorch's output-size rule (ceil_mode included) and its backward.
#include "autograd/op_helpers.h"
#include "kernels/pool.h"

namespace tessera {

namespace {

// PyTorch's pooling_output_shape: with ceil_mode, the last window must start inside the input or
// its left padding.
int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

}  // namespace

namespace {

std::pair<Tensor, Tensor> max_pool2d_impl(const Tensor& x_in, Int2 kernel, std::optional<Int2> stride_opt, Int2 padding,
                                          Int2 dilation, bool ceil_mode, bool want_indices) {
  TS_CHECK(x_in.defined(), "max_pool2d: the input is undefined");
  TS_CHECK(x_in.dim() == 4 || x_in.dim() == 3, "max_pool2d: expected a 3-D or 4-D input, got shape ", shape_str(x_in.shape()));
  detail::check_floating("max_pool2d", x_in);
  const Int2 stride = stride_opt.value_or(kernel);
  TS_CHECK(kernel.h > 0 && kernel.w > 0, "max_pool2d: kernel_size must be positive, got (", kernel.h, ", ", kernel.w, ")");
  TS_CHECK(stride.h > 0 && stride.w > 0, "max_pool2d: stride must be positive, got (", stride.h, ", ", stride.w, ")");
  TS_CHECK(dilation.h > 0 && dilation.w > 0, "max_pool2d: dilation must be positive");
  TS_CHECK(padding.h >= 0 && padding.w >= 0 && padding.h <= kernel.h / 2 && padding.w <= kernel.w / 2,
           "max_pool2d: padding must be non-negative and at most half the kernel size, got (", padding.h, ", ",
           padding.w, ") for kernel (", kernel.h, ", ", kernel.w, ")");
  const bool batched = x_in.dim() == 4;
  Tensor x = raw::contiguous(batched ? x_in : raw::unsqueeze(x_in, 0));
  Pool2dGeometry g{};
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.kh = kernel.h, g.kw = kernel.w, g.stride_h = stride.h, g.stride_w = stride.w;
  g.pad_h = padding.h, g.pad_w = padding.w, g.dil_h = dilation.h, g.dil_w = dilation.w;
  g.Ho = pooled_size(g.H, g.kh, g.pad_h, g.stride_h, g.dil_h, ceil_mode);
  g.Wo = pooled_size(g.W, g.kw, g.pad_w, g.stride_w, g.dil_w, ceil_mode);
  TS_CHECK(g.Ho >= 1 && g.Wo >= 1, "max_pool2d: the output size (", g.Ho, " x ", g.Wo, ") is too small for input ",
           shape_str(x_in.shape()));
  Tensor y = raw::empty({g.N, g.C, g.Ho, g.Wo}, x.dtype(), x.device());
  // The indices are only made when asked for or needed by the backward.
  const bool grad = needs_grad({&x_in});
  Tensor idx = want_indices || grad ? raw::empty({g.N, g.C, g.Ho, g.Wo}, DType::Int64, x.device()) : Tensor();
  max_pool2d_kernel(y, idx, x, g);
  if (!batched) {
    y = raw::squeeze(y, 0);
    if (idx.defined()) idx = raw::squeeze(idx, 0);
  }
  if (grad) {
    record("MaxPool2dBackward", {x_in}, {y, idx}, [si = SavedTensor(idx), g, shape = x_in.shape()](std::vector<Tensor>& grads) {
      Tensor go = raw::contiguous(grads[0]);
      Tensor gx = raw::empty({g.N, g.C, g.H, g.W}, go.dtype(), go.device());
      max_pool2d_backward_kernel(gx, go, raw::contiguous(si.get()), g);
      return std::vector<Tensor>{raw::reshape(gx, shape)};
    });
  }
  return {y, idx};
}

}  // namespace

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, Int2 kernel, OptionalInt2 stride, Int2 padding,
                                                  Int2 dilation, bool ceil_mode) {
  return max_pool2d_impl(x, kernel, stride.value, padding, dilation, ceil_mode, true);
}

Tensor max_pool2d(const Tensor& x, Int2 kernel, OptionalInt2 stride, Int2 padding, Int2 dilation, bool ceil_mode) {
  return max_pool2d_impl(x, kernel, stride.value, padding, dilation, ceil_mode, false).first;
}

}  // namespace tessera

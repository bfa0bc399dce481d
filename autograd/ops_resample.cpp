// interpolate (nearest, bilinear) and pad (constant, reflect), with their backward rules.
#include <cmath>

#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "kernels/pad.h"
#include "kernels/resize.h"

namespace tessera {

Tensor interpolate(const Tensor& x, Int2 size, const std::string& mode, std::optional<bool> align_corners) {
  return interpolate(x, OptionalInt2(size), std::nullopt, mode, align_corners);
}

Tensor interpolate(const Tensor& x_in, OptionalInt2 size_in, OptionalScale2 scale_in, const std::string& mode,
                   std::optional<bool> align_corners, bool recompute_scale_factor) {
  const std::optional<Int2> size = size_in.value;
  const std::optional<Scale2> scale_factor = scale_in.value;
  TS_CHECK(x_in.defined(), "interpolate: the input is undefined");
  TS_CHECK(x_in.dim() == 4, "interpolate: expected a 4-D input [N, C, H, W], got shape ", shape_str(x_in.shape()));
  detail::check_floating("interpolate", x_in);
  TS_AUTOCAST_F32(x_in, interpolate(TS_F32(x_in), size_in, scale_in, mode, align_corners, recompute_scale_factor));
  if (is_half(x_in.dtype()))
    return interpolate(detail::widen_half(x_in), size_in, scale_in, mode, align_corners, recompute_scale_factor).to(x_in.dtype());
  TS_CHECK(mode == "nearest" || mode == "bilinear", "interpolate: mode must be \"nearest\" or \"bilinear\", got \"",
           mode, "\"");
  TS_CHECK(size.has_value() != scale_factor.has_value(), "interpolate: give exactly one of size and scale_factor");
  TS_CHECK(mode == "bilinear" || !align_corners.has_value(),
           "interpolate: align_corners can only be set with the bilinear mode");
  ResizeParams p{};
  p.H = x_in.size(2), p.W = x_in.size(3);
  p.planes = x_in.size(0) * x_in.size(1);
  p.mode = mode == "bilinear" ? ResizeMode::Bilinear : ResizeMode::Nearest;
  p.align_corners = align_corners.value_or(false);
  if (size) {
    p.Ho = size->h, p.Wo = size->w;
  } else {
    TS_CHECK(scale_factor->h > 0 && scale_factor->w > 0 && std::isfinite(scale_factor->h) && std::isfinite(scale_factor->w),
             "interpolate: scale_factor must be positive and finite");
    p.Ho = static_cast<int64_t>(std::floor(static_cast<double>(p.H) * scale_factor->h));
    p.Wo = static_cast<int64_t>(std::floor(static_cast<double>(p.W) * scale_factor->w));
    if (!recompute_scale_factor) {
      p.scale_h = scale_factor->h;
      p.scale_w = scale_factor->w;
    }
  }
  TS_CHECK(p.Ho > 0 && p.Wo > 0, "interpolate: the output size (", p.Ho, " x ", p.Wo, ") must be positive");
  TS_CHECK(p.H > 0 && p.W > 0, "interpolate: the input has an empty spatial dimension: ", shape_str(x_in.shape()));
  Tensor x = raw::contiguous(x_in);
  Tensor y = raw::empty({x.size(0), x.size(1), p.Ho, p.Wo}, x.dtype(), x.device());
  resize_kernel(y, x, p);
  if (needs_grad({&x_in})) {
    record(mode == "bilinear" ? "UpsampleBilinearBackward" : "UpsampleNearestBackward", {x_in}, {y},
           [p, shape = x.shape()](std::vector<Tensor>& grads) {
             Tensor gy = raw::contiguous(grads[0]);
             Tensor gx = raw::empty(shape, gy.dtype(), gy.device());
             resize_backward_kernel(gx, gy, p);
             return std::vector<Tensor>{gx};
           });
  }
  return y;
}

Tensor pad(const Tensor& x_in, const std::vector<int64_t>& pads, const std::string& mode, double value) {
  TS_CHECK(x_in.defined(), "pad: the input is undefined");
  TS_CHECK(pads.size() == 2 || pads.size() == 4, "pad: pads must be {left, right} or {left, right, top, bottom}, got ",
           pads.size(), " values");
  TS_CHECK(mode == "constant" || mode == "reflect", "pad: mode must be \"constant\" or \"reflect\", got \"", mode, "\"");
  const bool two_d = pads.size() == 4;
  const int64_t spatial = two_d ? 2 : 1;
  TS_CHECK(x_in.dim() >= spatial, "pad: a ", spatial, "-D padding needs at least ", spatial, " dimensions, got shape ",
           shape_str(x_in.shape()));
  const bool reflect = mode == "reflect";
  PadGeometry g{};
  g.W = x_in.size(-1);
  g.H = two_d ? x_in.size(-2) : 1;
  g.P = x_in.numel() / std::max<int64_t>(g.H * g.W, 1);
  if (g.H * g.W == 0) g.P = 0;
  g.left = pads[0];
  g.top = two_d ? pads[2] : 0;
  g.Wo = g.W + pads[0] + pads[1];
  g.Ho = two_d ? g.H + pads[2] + pads[3] : 1;
  g.reflect = reflect;
  if (reflect) {
    for (int64_t v : pads) TS_CHECK(v >= 0, "pad: reflect padding must be non-negative, got ", v);
    TS_CHECK(pads[0] < g.W && pads[1] < g.W && (!two_d || (pads[2] < g.H && pads[3] < g.H)),
             "pad: reflect padding must be smaller than the padded dimension (input ", shape_str(x_in.shape()), ")");
  }
  TS_CHECK(g.Ho >= 0 && g.Wo >= 0, "pad: the padded size would be negative (input ", shape_str(x_in.shape()), ")");
  Shape out_shape = x_in.shape();
  out_shape.back() = g.Wo;
  if (two_d) out_shape[out_shape.size() - 2] = g.Ho;
  Tensor x = raw::contiguous(x_in);
  Tensor y = raw::empty(out_shape, x.dtype(), x.device());
  pad_kernel(y, x, g, value);
  if (needs_grad({&x_in})) {
    record(reflect ? "ReflectionPadBackward" : "ConstantPadBackward", {x_in}, {y},
           [g, shape = x.shape()](std::vector<Tensor>& grads) {
             Tensor gy = raw::contiguous(grads[0]);
             Tensor gx = raw::empty(shape, gy.dtype(), gy.device());
             pad_backward_kernel(gx, gy, g);
             return std::vector<Tensor>{gx};
           });
  }
  return y;
}

}  // namespace tessera

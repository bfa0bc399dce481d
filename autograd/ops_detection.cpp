// roi_align and multi_scale_roi_align (torchvision semantics) with their backward rules.
#include <cmath>

#include "autograd/op_helpers.h"
#include "kernels/reduce.h"
#include "kernels/roi_align.h"

namespace tessera {

namespace {

void check_rois(const char* op, const Tensor& rois, const Tensor& input) {
  TS_CHECK(rois.defined(), op, ": rois are undefined");
  TS_CHECK(rois.dim() == 2 && rois.size(1) == 5 && rois.dtype() == input.dtype() && rois.device() == input.device(), op,
           ": rois must be [K,5] ", dtype_name(input.dtype()), " on the input's device (", input.device(), "), got ",
           shape_str(rois.shape()), " ", dtype_name(rois.dtype()), " on ", rois.device());
}

// Batch indices must name an image of the input: checked once on the host (one transfer).
void check_batch_indices(const char* op, const Tensor& rois, int64_t N) {
  if (rois.size(0) == 0) return;
  Tensor col = raw::contiguous(raw::select(rois, 1, 0));
  Tensor lo = raw::empty({}, col.dtype(), col.device()), hi = raw::empty({}, col.dtype(), col.device());
  reduce(ReduceOp::Min, col, {}, lo, Tensor());
  reduce(ReduceOp::Max, col, {}, hi, Tensor());
  Tensor both = raw::empty({2}, col.dtype(), col.device());
  raw::copy_(raw::narrow(both, 0, 0, 1), raw::reshape(lo, {1}));
  raw::copy_(raw::narrow(both, 0, 1, 1), raw::reshape(hi, {1}));
  const std::vector<double> v = both.to_vector<double>();
  TS_CHECK(v[0] >= 0 && v[1] < static_cast<double>(N) && std::floor(v[0]) == v[0] && std::floor(v[1]) == v[1], op,
           ": roi batch indices must be integers in [0, ", N, "), got values in [", v[0], ", ", v[1], "]");
}

RoiAlignParams params_for(const Tensor& input, const Tensor& rois, Int2 output_size, double spatial_scale,
                          int64_t sampling_ratio, bool aligned) {
  RoiAlignParams p{};
  p.N = input.size(0), p.C = input.size(1), p.H = input.size(2), p.W = input.size(3);
  p.K = rois.size(0), p.PH = output_size.h, p.PW = output_size.w;
  p.spatial_scale = spatial_scale, p.sampling_ratio = sampling_ratio, p.aligned = aligned;
  return p;
}

void check_input(const char* op, const Tensor& input, Int2 output_size) {
  TS_CHECK(input.defined() && input.dim() == 4, op, ": expected a 4-D input [N, C, H, W], got ",
           input.defined() ? shape_str(input.shape()) : "undefined");
  detail::check_floating(op, input);
  TS_CHECK(output_size.h > 0 && output_size.w > 0, op, ": output_size must be positive, got (", output_size.h, ", ",
           output_size.w, ")");
}

}  // namespace

Tensor roi_align(const Tensor& input_in, const Tensor& rois_in, Int2 output_size, double spatial_scale,
                 int64_t sampling_ratio, bool aligned) {
  // Half features: in float32, as torchvision's autocast runs it; the boxes float32 or the half.
  if (input_in.defined() && is_half(input_in.dtype()))
    return roi_align(detail::widen_half(input_in), detail::widen_half(rois_in), output_size, spatial_scale, sampling_ratio,
                     aligned)
        .to(input_in.dtype());
  check_input("roi_align", input_in, output_size);
  check_rois("roi_align", rois_in, input_in);
  TS_CHECK(spatial_scale > 0 && std::isfinite(spatial_scale), "roi_align: spatial_scale must be positive, got ", spatial_scale);
  check_batch_indices("roi_align", rois_in, input_in.size(0));
  Tensor input = raw::contiguous(input_in), rois = raw::contiguous(rois_in);
  const RoiAlignParams p = params_for(input, rois, output_size, spatial_scale, sampling_ratio, aligned);
  Tensor out = raw::empty({p.K, p.C, p.PH, p.PW}, input.dtype(), input.device());
  roi_align_kernel(out, input, rois, p, Tensor(), 0);
  if (needs_grad({&input_in})) {
    record("RoiAlignBackward", {input_in}, {out}, [sr = SavedTensor(rois), p](std::vector<Tensor>& grads) {
      Tensor go = raw::contiguous(grads[0]);
      Tensor gi = zeros({p.N, p.C, p.H, p.W}, options(go.dtype(), go.device()));
      roi_align_backward_kernel(gi, go, sr.get(), p, Tensor(), 0);
      return std::vector<Tensor>{gi};
    });
  }
  return out;
}

std::vector<double> infer_roi_scales(const std::vector<Tensor>& features, Int2 image_size) {
  std::vector<double> scales;
  for (const Tensor& f : features) {
    TS_CHECK(f.defined() && f.dim() == 4, "infer_roi_scales: features must be 4-D");
    // torchvision: the height ratio, rounded to a power of two.
    const double approx = static_cast<double>(f.size(-2)) / static_cast<double>(image_size.h);
    scales.push_back(std::pow(2.0, std::round(std::log2(approx))));
  }
  return scales;
}

Tensor multi_scale_roi_align(const std::vector<Tensor>& features, const Tensor& rois_in, const std::vector<double>& scales,
                             Int2 output_size, int64_t sampling_ratio, double canonical_scale, int64_t canonical_level) {
  TS_CHECK(!features.empty(), "multi_scale_roi_align: no feature maps given");
  if (features[0].defined() && is_half(features[0].dtype())) {
    std::vector<Tensor> wide;
    for (const Tensor& f : features) wide.push_back(detail::widen_half(f));
    return multi_scale_roi_align(wide, detail::widen_half(rois_in), scales, output_size, sampling_ratio, canonical_scale,
                                 canonical_level)
        .to(features[0].dtype());
  }
  TS_CHECK(features.size() == scales.size(), "multi_scale_roi_align: ", features.size(), " feature maps but ", scales.size(),
           " scales");
  const Tensor& f0 = features[0];
  check_input("multi_scale_roi_align", f0, output_size);
  for (size_t l = 0; l < features.size(); ++l) {
    check_input("multi_scale_roi_align", features[l], output_size);
    TS_CHECK(features[l].size(0) == f0.size(0) && features[l].size(1) == f0.size(1) &&
                 features[l].dtype() == f0.dtype() && features[l].device() == f0.device(),
             "multi_scale_roi_align: feature map ", l, " (", features[l].str(), ") differs from map 0 (", f0.str(),
             ") in batch, channels, dtype or device");
    TS_CHECK(scales[l] > 0, "multi_scale_roi_align: scales must be positive");
  }
  check_rois("multi_scale_roi_align", rois_in, f0);
  check_batch_indices("multi_scale_roi_align", rois_in, f0.size(0));
  Tensor rois = raw::contiguous(rois_in);
  const int64_t K = rois.size(0), C = f0.size(1);
  // torchvision: k_min = -log2(first scale), k_max = -log2(last scale), as integers.
  const int64_t k_min = static_cast<int64_t>(-std::log2(static_cast<float>(scales.front())));
  const int64_t k_max = static_cast<int64_t>(-std::log2(static_cast<float>(scales.back())));
  Tensor levels = raw::empty({K}, DType::Int64, rois.device());
  if (features.size() > 1) roi_levels_kernel(levels, rois, canonical_scale, static_cast<double>(canonical_level), k_min, k_max);
  else raw::fill_(levels, 0.0);

  std::vector<Tensor> contiguous_features;
  std::vector<RoiAlignParams> params;
  Tensor out = raw::empty({K, C, output_size.h, output_size.w}, f0.dtype(), f0.device());
  for (size_t l = 0; l < features.size(); ++l) {
    contiguous_features.push_back(raw::contiguous(features[l]));
    params.push_back(params_for(contiguous_features[l], rois, output_size, scales[l], sampling_ratio, false));
    roi_align_kernel(out, contiguous_features[l], rois, params[l], levels, static_cast<int64_t>(l));
  }
  if (needs_grad(features)) {
    record("MultiScaleRoiAlignBackward", features, {out},
           [sr = SavedTensor(rois), sl = SavedTensor(levels), params](std::vector<Tensor>& grads) {
             Tensor go = raw::contiguous(grads[0]);
             std::vector<Tensor> result;
             for (size_t l = 0; l < params.size(); ++l) {
               const RoiAlignParams& p = params[l];
               Tensor gi = zeros({p.N, p.C, p.H, p.W}, options(go.dtype(), go.device()));
               roi_align_backward_kernel(gi, go, sr.get(), p, sl.get(), static_cast<int64_t>(l));
               result.push_back(gi);
             }
             return result;
           });
  }
  return out;
}

}  // namespace tessera

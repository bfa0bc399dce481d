// The public op API: names and argument order as in PyTorch. Every op works on CPU and CUDA
// tensors (all inputs on one device), follows NumPy broadcasting and PyTorch's type promotion, and
// records a backward node when grad mode is on and an input requires grad.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/grad_mode.h"
#include "core/tensor.h"

namespace tessera {

// A pair of sizes for the two spatial dims (height, width); an int means both, as in PyTorch.
struct Int2 {
  int64_t h, w;
  Int2(int64_t v) : h(v), w(v) {}  // NOLINT: conv2d(x, w, b, 2) reads as in PyTorch
  Int2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  bool operator==(const Int2& o) const { return h == o.h && w == o.w; }
};

// A pair of scale factors (height, width); a number means both.
struct Scale2 {
  double h, w;
  Scale2(double v) : h(v), w(v) {}  // NOLINT
  Scale2(double h_, double w_) : h(h_), w(w_) {}
};

// An optional pair that also takes a brace pair or a number: max_pool2d(x, 3, {2, 1}),
// max_pool2d(x, 2, 2), max_pool2d(x, 2) (no stride: the op's default). std::optional<Int2> alone
// rejects {2, 1}.
template <class Pair, class V>
struct Optional2 {
  std::optional<Pair> value;
  Optional2() = default;
  Optional2(std::nullopt_t) {}                                  // NOLINT
  Optional2(V v) : value(Pair(v)) {}                            // NOLINT
  Optional2(V h, V w) : value(Pair(h, w)) {}                    // NOLINT
  Optional2(Pair p) : value(p) {}                               // NOLINT
  Optional2(std::optional<Pair> p) : value(std::move(p)) {}     // NOLINT
  bool has_value() const { return value.has_value(); }
  const Pair& operator*() const { return *value; }
  Pair value_or(Pair fallback) const { return value.value_or(fallback); }
};
using OptionalInt2 = Optional2<Int2, int64_t>;
using OptionalScale2 = Optional2<Scale2, double>;

// ---- type promotion (PyTorch's result_type for two tensors / a tensor and a number)
DType result_type(const Tensor& a, const Tensor& b);
DType result_type(const Tensor& a, double scalar);
Shape broadcast_shapes(const Shape& a, const Shape& b);

// ---- elementwise, unary
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor square(const Tensor& x);
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor clamp_min(const Tensor& x, double min);
Tensor clamp_max(const Tensor& x, double max);

// ---- elementwise, binary (tensor-tensor with broadcasting, and tensor-number)
Tensor add(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, double b);
Tensor rsub(const Tensor& a, double b);  // b - a
Tensor mul(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, const Tensor& b);  // true division: integers give float32
Tensor div(const Tensor& a, double b);
Tensor rdiv(const Tensor& a, double b);  // b / a
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);

// ---- comparisons and logic (-> bool, not differentiable)
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor ne(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);

// ---- selection
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, double b);
Tensor where(const Tensor& cond, double a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- reductions (dims empty = all dims)
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor amax(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x);  // the maximum of all elements, 0-dim
Tensor min(const Tensor& x);
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);  // (values, indices)
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x);  // index into the flattened tensor
Tensor argmin(const Tensor& x);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
// Variance with Bessel's correction by default (correction = 1), as torch.var.
Tensor var(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
// Sums a broadcast gradient back to `shape` (leading dims, and dims where shape has size 1).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- linear algebra
Tensor matmul(const Tensor& a, const Tensor& b);  // torch.matmul: 1-D, 2-D and broadcast batches
Tensor mm(const Tensor& a, const Tensor& b);      // 2-D only
Tensor bmm(const Tensor& a, const Tensor& b);     // 3-D only, equal batch sizes
// x @ weight^T + bias (weight [out, in]; bias [out] or undefined), torch.nn.functional.linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- convolution (NCHW; weight [out, in / groups, kh, kw], as torch.nn.functional)
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Int2 stride = 1, Int2 padding = 0,
              Int2 dilation = 1, int64_t groups = 1);
// relu(conv2d(...)) in one pass: the CPU applies bias and ReLU to each band of output rows while it
// is in cache, and no pre-activation tensor is made. Same values and gradients as the two ops.
Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Int2 stride = 1, Int2 padding = 0,
                   Int2 dilation = 1, int64_t groups = 1);
// conv2d(x, weight) * scale[o] + shift[o], then ReLU if relu, in one pass: a convolution followed by
// a frozen batch norm (scale = weight / sqrt(var + eps), shift = bias - mean * scale), with the
// arithmetic of conv2d -> frozen_batch_norm (-> relu) and without their two extra passes over the
// output. scale is a constant (an Error if it requires grad); shift gets its gradient as a bias.
Tensor conv2d_scale_shift(const Tensor& x, const Tensor& weight, const Tensor& scale, const Tensor& shift, bool relu,
                          Int2 stride = 1, Int2 padding = 0, Int2 dilation = 1, int64_t groups = 1);
// weight [in, out / groups, kh, kw]; argument order as torch.nn.functional.conv_transpose2d.
// (set_cudnn_benchmark(true), kernels/conv_settings.h: choose cuDNN algorithms by timed trials.)
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Int2 stride = 1,
                        Int2 padding = 0, Int2 output_padding = 0, int64_t groups = 1, Int2 dilation = 1);

// ---- pooling (NCHW or CHW). stride defaults to the kernel size, as torch.nn.functional.max_pool2d.
Tensor max_pool2d(const Tensor& x, Int2 kernel_size, OptionalInt2 stride = std::nullopt, Int2 padding = 0,
                  Int2 dilation = 1, bool ceil_mode = false);
// (values, int64 indices into each input plane flattened as h * W + w)
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, Int2 kernel_size, OptionalInt2 stride = std::nullopt,
                                                  Int2 padding = 0, Int2 dilation = 1, bool ceil_mode = false);

// ---- normalisation (x: [N, C, *])
// As torch.nn.functional.batch_norm: in training, normalises with the batch statistics and updates
// running_mean/running_var in place (momentum; the unbiased variance in the running estimate); in
// evaluation, uses the running statistics. Any of the four tensors may be undefined (weight 1,
// bias 0, no running statistics: batch statistics always).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);
// As torch.nn.functional.group_norm: x [N, C, ...] is normalised over each group of C / num_groups
// channels (and all positions) of each sample with its own mean and biased variance, then scaled
// per channel; weight and bias [C] may be undefined. The same in training and evaluation, so it
// suits batches of one or two images (Wu & He, 2018). Built from differentiable ops.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);
// torchvision's FrozenBatchNorm2d: x * w / sqrt(rv + eps) + (b - rm * w / sqrt(rv + eps)); the four
// per-channel tensors are constants (no gradient flows to them).
Tensor frozen_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                         const Tensor& running_var, double eps = 1e-5);

// ---- resampling and padding
// torch.nn.functional.interpolate for NCHW input: mode "nearest" or "bilinear"; give size or
// scale_factor (not both). With scale_factor the output is floor(in * scale) and, as PyTorch, the
// source positions use 1/scale unless recompute_scale_factor. align_corners: bilinear only
// (default false).
Tensor interpolate(const Tensor& x, OptionalInt2 size, OptionalScale2 scale_factor = std::nullopt,
                   const std::string& mode = "nearest", std::optional<bool> align_corners = std::nullopt,
                   bool recompute_scale_factor = false);
// To a size with a mode, no placeholder for the scale: interpolate(x, {64, 64}, "bilinear").
Tensor interpolate(const Tensor& x, Int2 size, const std::string& mode, std::optional<bool> align_corners = std::nullopt);
// torch.nn.functional.pad over the last one or two dims: pads = {left, right} or
// {left, right, top, bottom}; mode "constant" (pads may be negative: cropping) or "reflect".
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode = "constant", double value = 0.0);

// ---- detection ops (torchvision.ops semantics)
// rois [K, 5] rows (batch index, x1, y1, x2, y2) in input coordinates, of the input's dtype and
// device; output [K, C, output_size.h, output_size.w]. sampling_ratio <= 0: adaptive.
Tensor roi_align(const Tensor& input, const Tensor& rois, Int2 output_size, double spatial_scale = 1.0,
                 int64_t sampling_ratio = -1, bool aligned = false);
// torchvision's MultiScaleRoIAlign over FPN levels with the given scales (powers of 2, finest
// first): each roi is pooled from the level its size maps to, in one launch per level.
Tensor multi_scale_roi_align(const std::vector<Tensor>& features, const Tensor& rois, const std::vector<double>& scales,
                             Int2 output_size, int64_t sampling_ratio, double canonical_scale = 224.0,
                             int64_t canonical_level = 4);
// The scales MultiScaleRoIAlign infers: 2^round(log2(feature size / image size)) per level.
std::vector<double> infer_roi_scales(const std::vector<Tensor>& features, Int2 image_size);

// Indices (int64) of the boxes [N, 4] (x1, y1, x2, y2) kept by non-maximum suppression, by
// decreasing score (ties: lower index first); a box is dropped when its IoU with a kept box
// exceeds iou_threshold, which must lie in [0, 1].
Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold);
// NMS within each category idxs[i] (torchvision's coordinate-offset trick), by decreasing score.
Tensor batched_nms(const Tensor& boxes, const Tensor& scores, const Tensor& idxs, double iou_threshold);
Tensor box_area(const Tensor& boxes);                             // [N]
Tensor box_iou(const Tensor& boxes1, const Tensor& boxes2);       // [N, M]
Tensor clip_boxes_to_image(const Tensor& boxes, Int2 image_size);  // image_size = (height, width)
Tensor remove_small_boxes(const Tensor& boxes, double min_size);  // int64 indices of boxes at least min_size wide and high

// ---- losses (reduction: "mean", "sum" or "none")
// logits [N, C] or [N, C, d1, ...], target int64 [N] or [N, d1, ...] with values in [0, C) or
// ignore_index; weight: optional [C] class weights (mean divides by the summed weights).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight = Tensor(),
                     int64_t ignore_index = -100, const std::string& reduction = "mean");
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight = Tensor(),
                int64_t ignore_index = -100, const std::string& reduction = "mean");
// U-Net's loss: per-pixel cross-entropy times a per-pixel weight map [N, d1, ...]; "mean" divides
// the weighted sum by the number of pixels that are not ignored.
Tensor pixel_weighted_cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& pixel_weight,
                                    int64_t ignore_index = -100, const std::string& reduction = "mean");
Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& y, const Tensor& weight = Tensor(),
                                        const Tensor& pos_weight = Tensor(), const std::string& reduction = "mean");
Tensor smooth_l1_loss(const Tensor& x, const Tensor& y, double beta = 1.0, const std::string& reduction = "mean");
Tensor l1_loss(const Tensor& x, const Tensor& y, const std::string& reduction = "mean");

// Zeroes each element with probability p and scales the rest by 1/(1-p), from the Philox stream of
// `gen` (the default generator if null): the same seed gives the same mask on CPU and CUDA.
class Generator;
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true, Generator* gen = nullptr);

// ---- softmax
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// ---- joining and splitting
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim = 0);  // split_with_sizes
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);

// ---- indexing
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& source);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
Tensor nonzero(const Tensor& x);  // [n, x.dim()] int64
// Stable sort (NaN largest); returns (values, int64 indices).
std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
// The k largest (or smallest) along dim, in sorted order; ties keep the earlier index first.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true, bool sorted = true);
Tensor cumsum(const Tensor& x, int64_t dim);

// ---- views and conversions (also available as Tensor methods)
Tensor view(const Tensor& x, const Shape& shape);
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const Shape& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor contiguous(const Tensor& x);
Tensor clone(const Tensor& x);
Tensor to(const Tensor& x, Device device);
Tensor to(const Tensor& x, DType dtype);

// ---- in-place updates for optimizers and buffers (not recorded: an Error on a tensor that
// requires grad while grad mode is on; use NoGradGuard)
Tensor& add_(Tensor& self, const Tensor& other, double alpha = 1.0);
Tensor& mul_(Tensor& self, double value);
Tensor& mul_(Tensor& self, const Tensor& other);

// ---- operators
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

}  // namespace tessera

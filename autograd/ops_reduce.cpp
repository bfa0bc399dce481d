// Reductions and their backward rules.
#include <algorithm>

#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "kernels/reduce.h"

namespace tessera {

namespace detail {

Shape normalize_dims(const Shape& dims, int64_t ndim, const char* op) {
  Shape out;
  for (int64_t d : dims) out.push_back(wrap_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  TS_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, ": a dimension appears twice in ",
           shape_str(dims));
  if (ndim == 0) out.clear();  // a 0-dim tensor: dim 0 / -1 means "all"
  return out;
}

Shape reduced_shape(const Shape& shape, const Shape& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    const bool reduced = dims.empty() || std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!reduced) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Tensor unsqueeze_dims(const Tensor& x, const Shape& dims) {
  Tensor out = x;
  for (int64_t d : dims) out = out.unsqueeze(d);  // dims sorted ascending
  return out;
}

}  // namespace detail

using detail::normalize_dims;
using detail::reduced_shape;

namespace {

Shape all_dims(int64_t ndim) {
  Shape d(ndim);
  for (int64_t i = 0; i < ndim; ++i) d[i] = i;
  return d;
}

// The reduced dims, explicitly (empty -> all).
Shape explicit_dims(const Shape& dims, int64_t ndim) { return dims.empty() ? all_dims(ndim) : dims; }

int64_t reduced_count(const Tensor& x, const Shape& dims) {
  int64_t n = 1;
  for (int64_t d : explicit_dims(dims, x.dim())) n *= x.size(d);
  return n;
}

Tensor reduce_raw(ReduceOp op, const Tensor& x, const Shape& dims, bool keepdim, DType out_dtype) {
  Tensor values = raw::empty(reduced_shape(x.shape(), dims, keepdim), out_dtype, x.device());
  reduce(op, x, dims, values, Tensor());
  return values;
}

// g (of the reduced shape) broadcast back to x's shape.
Tensor expand_back(const Tensor& g, const Shape& x_shape, const Shape& dims, bool keepdim) {
  Tensor e = keepdim ? g : detail::unsqueeze_dims(g, explicit_dims(dims, static_cast<int64_t>(x_shape.size())));
  return e.expand(x_shape);
}

Tensor sum_mean(const Tensor& x, const Shape& dims_in, bool keepdim, bool is_mean) {
  const char* name = is_mean ? "mean" : "sum";
  TS_CHECK(x.defined(), name, ": the input tensor is undefined");
  const Shape dims = normalize_dims(dims_in, x.dim(), name);
  if (is_mean)
    TS_CHECK(is_floating(x.dtype()), "mean: the input must be float32 or float64, got ", dtype_name(x.dtype()),
             " (convert it with to(kFloat32) first)");
  const DType out_dtype = is_floating(x.dtype()) ? x.dtype() : DType::Int64;
  Tensor out = reduce_raw(is_mean ? ReduceOp::Mean : ReduceOp::Sum, x, dims, keepdim, out_dtype);
  if (needs_grad({&x})) {
    const double scale = is_mean ? 1.0 / static_cast<double>(reduced_count(x, dims)) : 1.0;
    record(is_mean ? "MeanBackward" : "SumBackward", {x}, {out},
           [shape = x.shape(), dims, keepdim, scale, is_mean](std::vector<Tensor>& g) {
             Tensor e = expand_back(g[0], shape, dims, keepdim);
             return std::vector<Tensor>{is_mean ? mul(e, scale) : e};
           });
  }
  return out;
}

Tensor extremum(const Tensor& x, const Shape& dims_in, bool keepdim, bool is_max) {
  const char* name = is_max ? "amax" : "amin";
  TS_CHECK(x.defined(), name, ": the input tensor is undefined");
  const Shape dims = normalize_dims(dims_in, x.dim(), name);
  TS_CHECK(reduced_count(x, dims) > 0, name, ": cannot reduce over an empty dimension (shape ", shape_str(x.shape()), ")");
  Tensor out = reduce_raw(is_max ? ReduceOp::Max : ReduceOp::Min, x, dims, keepdim, x.dtype());
  if (needs_grad({&x})) {
    // The gradient is shared evenly among the elements equal to the extremum.
    record(is_max ? "AmaxBackward" : "AminBackward", {x}, {out},
           [sx = SavedTensor(x), so = SavedTensor(out), dims, keepdim](std::vector<Tensor>& g) {
             Tensor x_ = sx.get();
             Tensor hit = to(eq(x_, expand_back(so.get(), x_.shape(), dims, keepdim)), g[0].dtype());
             Tensor count = sum(hit, dims, true);
             Tensor gk = keepdim ? g[0] : detail::unsqueeze_dims(g[0], explicit_dims(dims, x_.dim()));
             return std::vector<Tensor>{mul(hit, div(gk, count))};
           });
  }
  return out;
}

std::pair<Tensor, Tensor> extremum_dim(const Tensor& x, int64_t dim_in, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  TS_CHECK(x.defined(), name, ": the input tensor is undefined");
  const int64_t dim = wrap_dim(dim_in, x.dim(), name);
  const Shape dims = x.dim() == 0 ? Shape{} : Shape{dim};
  TS_CHECK(reduced_count(x, dims) > 0, name, ": cannot reduce over an empty dimension (shape ", shape_str(x.shape()), ")");
  const Shape out_shape = reduced_shape(x.shape(), dims, keepdim);
  Tensor values = raw::empty(out_shape, x.dtype(), x.device());
  Tensor indices = raw::empty(out_shape, DType::Int64, x.device());
  reduce(is_max ? ReduceOp::ArgMax : ReduceOp::ArgMin, x, dims, values, indices);
  if (needs_grad({&x})) {
    record(is_max ? "MaxBackward" : "MinBackward", {x}, {values, indices},
           [si = SavedTensor(indices), shape = x.shape(), dim, keepdim, scalar = x.dim() == 0](std::vector<Tensor>& g) {
             if (scalar) return std::vector<Tensor>{g[0]};
             Tensor idx = si.get(), gv = g[0];
             if (!keepdim) {
               idx = idx.unsqueeze(dim);
               gv = gv.unsqueeze(dim);
             }
             return std::vector<Tensor>{scatter_add(zeros(shape, options(gv.dtype(), gv.device())), dim, idx, gv)};
           });
  }
  return {values, indices};
}

Tensor arg_all(const Tensor& x, bool is_max) {
  const char* name = is_max ? "argmax" : "argmin";
  TS_CHECK(x.defined(), name, ": the input tensor is undefined");
  TS_CHECK(x.numel() > 0, name, ": the input is empty");
  Tensor indices = raw::empty({}, DType::Int64, x.device());
  reduce(is_max ? ReduceOp::ArgMax : ReduceOp::ArgMin, x, {}, Tensor(), indices);
  return indices;
}

Tensor arg_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* name = is_max ? "argmax" : "argmin";
  TS_CHECK(x.defined(), name, ": the input tensor is undefined");
  dim = wrap_dim(dim, x.dim(), name);
  const Shape dims = x.dim() == 0 ? Shape{} : Shape{dim};
  TS_CHECK(reduced_count(x, dims) > 0, name, ": cannot reduce over an empty dimension (shape ", shape_str(x.shape()), ")");
  Tensor indices = raw::empty(reduced_shape(x.shape(), dims, keepdim), DType::Int64, x.device());
  reduce(is_max ? ReduceOp::ArgMax : ReduceOp::ArgMin, x, dims, Tensor(), indices);
  return indices;
}

}  // namespace

Tensor sum(const Tensor& x) {
  TS_AUTOCAST_F32(x, sum(TS_F32(x)));
  return sum_mean(x, {}, false, false);
}
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  TS_AUTOCAST_F32(x, sum(TS_F32(x), dims, keepdim));
  return sum_mean(x, dims, keepdim, false);
}
Tensor mean(const Tensor& x) { return sum_mean(x, {}, false, true); }
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) { return sum_mean(x, dims, keepdim, true); }
Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) { return extremum(x, dims, keepdim, true); }
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim) { return extremum(x, dims, keepdim, false); }
Tensor max(const Tensor& x) { return amax(x); }
Tensor min(const Tensor& x) { return amin(x); }
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) { return extremum_dim(x, dim, keepdim, true); }
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) { return extremum_dim(x, dim, keepdim, false); }
Tensor argmax(const Tensor& x) { return arg_all(x, true); }
Tensor argmin(const Tensor& x) { return arg_all(x, false); }
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return arg_dim(x, dim, keepdim, true); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return arg_dim(x, dim, keepdim, false); }

Tensor var(const Tensor& x, const Shape& dims_in, int64_t correction, bool keepdim) {
  TS_CHECK(x.defined(), "var: the input tensor is undefined");
  detail::check_floating("var", x);
  TS_CHECK(correction >= 0, "var: correction must be non-negative, got ", correction);
  if (is_half(x.dtype())) return var(detail::widen_half(x), dims_in, correction, keepdim).to(x.dtype());
  const Shape dims = normalize_dims(dims_in, x.dim(), "var");
  const int64_t n = reduced_count(x, dims);
  // Two passes (mean, then squared deviations): accurate, and differentiable by composition.
  Tensor centered = sub(x, mean(x, dims, true));
  return div(sum(mul(centered, centered), dims, keepdim), static_cast<double>(n - correction));
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  TS_CHECK(lead >= 0, "sum_to: cannot sum ", shape_str(x.shape()), " to the larger rank of ", shape_str(shape));
  Shape dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
      continue;
    }
    const int64_t want = shape[d - lead];
    TS_CHECK(want == x.size(d) || want == 1, "sum_to: ", shape_str(x.shape()), " does not broadcast from ", shape_str(shape));
    if (want == 1 && x.size(d) != 1) dims.push_back(d);
  }
  Tensor r = dims.empty() ? x : sum(x, dims, true);
  return r.reshape(shape);
}

}  // namespace tessera

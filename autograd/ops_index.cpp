// Indexing, sorting and scanning ops, and their backward rules.
#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "kernels/index.h"
#include "kernels/reduce.h"
#include "kernels/sort.h"

namespace tessera {

namespace {

void check_index_tensor(const char* op, const Tensor& index, const Tensor& x) {
  TS_CHECK(index.defined(), op, ": the index tensor is undefined");
  TS_CHECK(index.dtype() == DType::Int64 || index.dtype() == DType::Int32, op, ": index must be int64 or int32, got ",
           dtype_name(index.dtype()));
  TS_CHECK(index.device() == x.device(), op, ": index is on ", index.device(), " but the input is on ", x.device());
}

// Every index value must lie in [0, size). On the CPU it is checked here, for a message with the
// values. On CUDA the kernels check their own indices (kernels/index.h) so that no op waits for
// the device; `host_check` forces this check where no kernel runs (gather from a 0-dim tensor).
void check_index_range(const char* op, const Tensor& index, int64_t size, bool host_check = false) {
  if (index.numel() == 0) return;
  if (index.is_cuda() && !host_check) return;
  Tensor lo = raw::empty({1}, index.dtype(), index.device()), hi = raw::empty({1}, index.dtype(), index.device());
  reduce(ReduceOp::Min, index, {}, raw::reshape(lo, {}), Tensor());
  reduce(ReduceOp::Max, index, {}, raw::reshape(hi, {}), Tensor());
  Tensor both = raw::empty({2}, DType::Int64, index.device());
  raw::copy_(raw::narrow(both, 0, 0, 1), lo);
  raw::copy_(raw::narrow(both, 0, 1, 1), hi);
  const std::vector<int64_t> v = both.to_vector<int64_t>();  // one transfer from the device
  TS_CHECK(v[0] >= 0 && v[1] < size, op, ": index out of range: values span [", v[0], ", ", v[1],
           "] but the dimension has size ", size);
}

struct Block3 {
  int64_t outer = 1, D = 1, inner = 1;
};
Block3 block_around(const Shape& shape, int64_t dim) {
  Block3 b;
  for (int64_t d = 0; d < dim; ++d) b.outer *= shape[d];
  b.D = shape.empty() ? 1 : shape[dim];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) b.inner *= shape[d];
  return b;
}

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index_in) {
  TS_CHECK(x.defined(), "index_select: the input tensor is undefined");
  check_index_tensor("index_select", index_in, x);
  TS_CHECK(index_in.dim() <= 1, "index_select: index must be 1-D, got shape ", shape_str(index_in.shape()));
  const int64_t nd = std::max<int64_t>(x.dim(), 1);
  dim = wrap_dim(dim, nd, "index_select");
  Tensor xc = raw::contiguous(x.dim() == 0 ? raw::reshape(x, {1}) : x);
  Tensor index = raw::contiguous(raw::reshape(index_in, {-1}));
  check_index_range("index_select", index, xc.size(dim));
  Shape shape = xc.shape();
  shape[dim] = index.numel();
  Block3 b = block_around(xc.shape(), dim);
  Tensor out = raw::empty(shape, x.dtype(), x.device());
  index_select_kernel(out, xc, index, b.outer, b.D, b.inner);
  if (x.dim() == 0) out = raw::reshape(out, {});
  if (needs_grad({&x})) {
    record("IndexSelectBackward", {x}, {out}, [si = SavedTensor(index), shape = x.shape(), dim](std::vector<Tensor>& g) {
      Tensor z = zeros(shape, options(g[0].dtype(), g[0].device()));
      return std::vector<Tensor>{index_add(z, dim, si.get(), g[0])};
    });
  }
  return out;
}

Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index_in, const Tensor& source) {
  TS_CHECK(self.defined() && source.defined(), "index_add: undefined input");
  detail::check_same_device("index_add", {&self, &source});
  if (is_half(self.dtype()))  // summed in float32, each result rounded once
    return index_add(detail::widen_half(self), dim, index_in, detail::widen_half(source)).to(self.dtype());
  check_index_tensor("index_add", index_in, self);
  TS_CHECK(index_in.dim() <= 1, "index_add: index must be 1-D, got shape ", shape_str(index_in.shape()));
  TS_CHECK(self.dim() >= 1, "index_add: self must have at least one dimension");
  dim = wrap_dim(dim, self.dim(), "index_add");
  Tensor index = raw::contiguous(raw::reshape(index_in, {-1}));
  Shape expected = self.shape();
  expected[dim] = index.numel();
  TS_CHECK(source.shape() == expected, "index_add: source must have shape ", shape_str(expected), " (self with dimension ",
           dim, " of the index's length), got ", shape_str(source.shape()));
  check_index_range("index_add", index, self.size(dim));
  Tensor out = raw::clone(self);
  Block3 b = block_around(self.shape(), dim);
  index_add_kernel(out, raw::contiguous(raw::to(source, self.dtype())), index, b.outer, b.D, b.inner);
  if (needs_grad({&self, &source})) {
    record("IndexAddBackward", {self, source}, {out}, [si = SavedTensor(index), dim](std::vector<Tensor>& g) {
      return std::vector<Tensor>{g[0], index_select(g[0], dim, si.get())};
    });
  }
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  TS_CHECK(x.defined(), "gather: the input tensor is undefined");
  check_index_tensor("gather", index, x);
  TS_CHECK(index.dim() == x.dim(), "gather: index must have the input's ", x.dim(), " dimensions, got shape ",
           shape_str(index.shape()));
  dim = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "gather");
  for (int64_t d = 0; d < x.dim(); ++d)
    TS_CHECK(d == dim || index.size(d) <= x.size(d), "gather: index shape ", shape_str(index.shape()),
             " exceeds the input shape ", shape_str(x.shape()), " in dimension ", d);
  check_index_range("gather", index, x.dim() == 0 ? 1 : x.size(dim), x.dim() == 0);
  Tensor out = raw::empty(index.shape(), x.dtype(), x.device());
  if (x.dim() == 0) {
    raw::copy_(out, x);
  } else {
    gather_kernel(out, x, dim, index);
  }
  if (needs_grad({&x})) {
    record("GatherBackward", {x}, {out}, [si = SavedTensor(index), shape = x.shape(), dim](std::vector<Tensor>& g) {
      Tensor z = zeros(shape, options(g[0].dtype(), g[0].device()));
      return std::vector<Tensor>{scatter_add(z, dim, si.get(), g[0])};
    });
  }
  return out;
}

Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  TS_CHECK(self.defined() && src.defined(), "scatter_add: undefined input");
  detail::check_same_device("scatter_add", {&self, &src});
  if (is_half(self.dtype()))
    return scatter_add(detail::widen_half(self), dim, index, detail::widen_half(src)).to(self.dtype());
  check_index_tensor("scatter_add", index, self);
  TS_CHECK(self.dim() >= 1, "scatter_add: self must have at least one dimension");
  TS_CHECK(index.dim() == self.dim() && src.dim() == self.dim(), "scatter_add: self, index and src must have the same ",
           "number of dimensions, got ", shape_str(self.shape()), ", ", shape_str(index.shape()), ", ", shape_str(src.shape()));
  dim = wrap_dim(dim, self.dim(), "scatter_add");
  for (int64_t d = 0; d < self.dim(); ++d) {
    TS_CHECK(index.size(d) <= src.size(d), "scatter_add: index shape ", shape_str(index.shape()), " exceeds src shape ",
             shape_str(src.shape()), " in dimension ", d);
    TS_CHECK(d == dim || index.size(d) <= self.size(d), "scatter_add: index shape ", shape_str(index.shape()),
             " exceeds self shape ", shape_str(self.shape()), " in dimension ", d);
  }
  check_index_range("scatter_add", index, self.size(dim));
  Tensor out = raw::clone(self);
  scatter_add_kernel(out, dim, index, raw::to(src, self.dtype()));
  if (needs_grad({&self, &src})) {
    record("ScatterAddBackward", {self, src}, {out},
           [si = SavedTensor(index), src_shape = src.shape(), dim](std::vector<Tensor>& g) {
             Tensor idx = si.get();
             Tensor gs = gather(g[0], dim, idx);
             if (gs.shape() != src_shape) {  // src larger than index: the rest received nothing
               Tensor z = zeros(src_shape, options(gs.dtype(), gs.device()));
               Tensor region = z;
               for (int64_t d = 0; d < z.dim(); ++d) region = raw::narrow(region, d, 0, idx.size(d));
               raw::copy_(region, gs);
               gs = z;
             }
             return std::vector<Tensor>{g[0], gs};
           });
  }
  return out;
}

Tensor nonzero(const Tensor& x) {
  TS_CHECK(x.defined(), "nonzero: the input tensor is undefined");
  return nonzero_kernel(x);
}

std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  TS_CHECK(x.defined(), "sort: the input tensor is undefined");
  if (is_half(x.dtype())) {  // compared as float32 (exact), the values rounded back (exact)
    auto [v, i] = sort(detail::widen_half(x), dim, descending);
    return {v.to(x.dtype()), i};
  }
  const int64_t nd = std::max<int64_t>(x.dim(), 1);
  dim = wrap_dim(dim, nd, "sort");
  Tensor x1 = x.dim() == 0 ? raw::reshape(x, {1}) : x;
  const bool is_bool = x.dtype() == DType::Bool;
  // Sort along the last dim of a contiguous copy, then move the dim back.
  Tensor xt = raw::contiguous(raw::transpose(is_bool ? raw::to(x1, DType::UInt8) : x1, dim, -1));
  const int64_t D = xt.size(-1), rows = D == 0 ? 0 : xt.numel() / D;
  Tensor vt = raw::empty(xt.shape(), xt.dtype(), x.device());
  Tensor it = raw::empty(xt.shape(), DType::Int64, x.device());
  sort_kernel(vt, it, xt, rows, D, descending);
  Tensor values = raw::contiguous(raw::transpose(vt, dim, -1));
  Tensor indices = raw::contiguous(raw::transpose(it, dim, -1));
  if (is_bool) values = raw::to(values, DType::Bool);
  if (x.dim() == 0) {
    values = raw::reshape(values, {});
    indices = raw::reshape(indices, {});
  }
  if (needs_grad({&x})) {
    record("SortBackward", {x}, {values, indices},
           [si = SavedTensor(indices), shape = x.shape(), dim](std::vector<Tensor>& g) {
             if (shape.empty()) return std::vector<Tensor>{g[0]};
             Tensor z = zeros(shape, options(g[0].dtype(), g[0].device()));
             return std::vector<Tensor>{scatter_add(z, dim, si.get(), g[0])};
           });
  }
  return {values, indices};
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  NoGradGuard no_grad;  // indices only
  return sort(x, dim, descending).second;
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool /*sorted*/) {
  TS_CHECK(x.defined(), "topk: the input tensor is undefined");
  dim = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "topk");
  const int64_t size = x.dim() == 0 ? 1 : x.size(dim);
  TS_CHECK(k >= 0 && k <= size, "topk: k (", k, ") must be in [0, ", size, "] for dimension ", dim);
  // A full stable sort, then the first k: O(n log n), deterministic ties. (Always sorted.)
  auto [values, indices] = sort(x, dim, largest);
  if (x.dim() == 0) return {values, indices};
  return {values.narrow(dim, 0, k).contiguous(), raw::contiguous(raw::narrow(indices, dim, 0, k))};
}

Tensor cumsum(const Tensor& x, int64_t dim) {
  TS_CHECK(x.defined(), "cumsum: the input tensor is undefined");
  TS_AUTOCAST_F32(x, cumsum(TS_F32(x), dim));
  if (is_half(x.dtype())) return cumsum(detail::widen_half(x), dim).to(x.dtype());  // float32 running sums
  dim = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "cumsum");
  Tensor xc = raw::contiguous(x);
  const Block3 b = block_around(xc.shape(), dim);
  const DType out_dtype = is_floating(x.dtype()) ? x.dtype() : DType::Int64;
  Tensor out = raw::empty(x.shape(), out_dtype, x.device());
  cumsum_kernel(out, xc, b.outer, b.D, b.inner);
  if (needs_grad({&x})) {
    // d/dx_i of sum_j g_j * y_j = sum_{j >= i} g_j = total - cumsum(g)_i + g_i.
    record("CumsumBackward", {x}, {out}, [dim](std::vector<Tensor>& g) {
      const Tensor& gy = g[0];
      if (gy.dim() == 0) return std::vector<Tensor>{gy};
      return std::vector<Tensor>{add(sub(sum(gy, {dim}, true), cumsum(gy, dim)), gy)};
    });
  }
  return out;
}

}  // namespace tessera

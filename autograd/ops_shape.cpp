// Views, layout and device conversions, joining and splitting; and the Tensor methods that route
// here so that a method call never drops a gradient.
#include <numeric>

#include "autograd/op_helpers.h"

namespace tessera {

namespace {

// Records a single-input op whose backward maps the output gradient to the input gradient.
template <class F>
Tensor with_backward(const char* name, const Tensor& x, Tensor out, F backward) {
  if (needs_grad({&x})) {
    // A view must not share x's autograd metadata: make it a distinct handle first.
    if (out.is_same(x)) out = x.detach();
    record(name, {x}, {out}, [backward](std::vector<Tensor>& g) { return std::vector<Tensor>{backward(g[0])}; });
  }
  return out;
}

// Zeros of `shape` with g written into the region that `region(zeros)` selects.
template <class Region>
Tensor embed(const Tensor& g, const Shape& shape, Region region) {
  Tensor z = zeros(shape, options(g.dtype(), g.device()));
  raw::copy_(region(z), g);
  return z;
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape) {
  return with_backward("ViewBackward", x, raw::view(x, shape), [s = x.shape()](const Tensor& g) { return g.reshape(s); });
}
Tensor reshape(const Tensor& x, const Shape& shape) {
  return with_backward("ReshapeBackward", x, raw::reshape(x, shape), [s = x.shape()](const Tensor& g) { return g.reshape(s); });
}
Tensor permute(const Tensor& x, const Shape& dims) {
  Tensor out = raw::permute(x, dims);
  Shape inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[wrap_dim(dims[i], x.dim(), "permute")] = static_cast<int64_t>(i);
  return with_backward("PermuteBackward", x, out, [inverse](const Tensor& g) { return g.permute(inverse); });
}
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  return with_backward("TransposeBackward", x, raw::transpose(x, d0, d1), [d0, d1](const Tensor& g) { return g.transpose(d0, d1); });
}
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  Tensor out = raw::narrow(x, dim, start, length);
  return with_backward("NarrowBackward", x, out, [s = x.shape(), dim, start, length](const Tensor& g) {
    return embed(g, s, [&](const Tensor& z) { return raw::narrow(z, dim, start, length); });
  });
}
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Tensor out = raw::slice(x, dim, start, end, step);
  return with_backward("SliceBackward", x, out, [s = x.shape(), dim, start, end, step](const Tensor& g) {
    return embed(g, s, [&](const Tensor& z) { return raw::slice(z, dim, start, end, step); });
  });
}
Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  Tensor out = raw::select(x, dim, index);
  return with_backward("SelectBackward", x, out, [s = x.shape(), dim, index](const Tensor& g) {
    return embed(g, s, [&](const Tensor& z) { return raw::select(z, dim, index); });
  });
}
Tensor expand(const Tensor& x, const Shape& shape) {
  return with_backward("ExpandBackward", x, raw::expand(x, shape), [s = x.shape()](const Tensor& g) { return sum_to(g, s); });
}
Tensor squeeze(const Tensor& x) {
  return with_backward("SqueezeBackward", x, raw::squeeze(x), [s = x.shape()](const Tensor& g) { return g.reshape(s); });
}
Tensor squeeze(const Tensor& x, int64_t dim) {
  return with_backward("SqueezeBackward", x, raw::squeeze(x, dim), [s = x.shape()](const Tensor& g) { return g.reshape(s); });
}
Tensor unsqueeze(const Tensor& x, int64_t dim) {
  return with_backward("UnsqueezeBackward", x, raw::unsqueeze(x, dim), [s = x.shape()](const Tensor& g) { return g.reshape(s); });
}
Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  return with_backward("FlattenBackward", x, raw::flatten(x, start_dim, end_dim),
                       [s = x.shape()](const Tensor& g) { return g.reshape(s); });
}
Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  return with_backward("ContiguousBackward", x, raw::contiguous(x), [](const Tensor& g) { return g; });
}
Tensor clone(const Tensor& x) {
  return with_backward("CloneBackward", x, raw::clone(x), [](const Tensor& g) { return g; });
}
Tensor to(const Tensor& x, Device device) {
  if (x.device() == device) return x;
  return with_backward("ToDeviceBackward", x, raw::to(x, device), [d = x.device()](const Tensor& g) { return g.to(d); });
}
Tensor to(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = raw::to(x, dtype);
  if (!is_floating(dtype)) return out;  // integer results carry no gradient
  return with_backward("ToDtypeBackward", x, out, [d = x.dtype()](const Tensor& g) { return g.to(d); });
}

// ---- joining and splitting

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim_in) {
  TS_CHECK(!tensors.empty(), "cat: expected a non-empty list of tensors");
  const Tensor& first = tensors[0];
  TS_CHECK(first.defined(), "cat: tensor 0 is undefined");
  TS_CHECK(first.dim() > 0, "cat: zero-dimensional tensors cannot be concatenated");
  const int64_t dim = wrap_dim(dim_in, first.dim(), "cat");
  DType dtype = first.dtype();
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    TS_CHECK(t.defined(), "cat: tensor ", i, " is undefined");
    TS_CHECK(t.device() == first.device(), "cat: tensor ", i, " is on ", t.device(), ", tensor 0 on ", first.device());
    TS_CHECK(t.dim() == first.dim(), "cat: tensor ", i, " has ", t.dim(), " dimensions, tensor 0 has ", first.dim());
    for (int64_t d = 0; d < t.dim(); ++d)
      TS_CHECK(d == dim || t.size(d) == first.size(d), "cat: sizes must match except in dimension ", dim,
               "; tensor ", i, " has shape ", shape_str(t.shape()), ", tensor 0 ", shape_str(first.shape()));
    dtype = promote_types(dtype, t.dtype());
    total += t.size(dim);
  }
  Shape shape = first.shape();
  shape[dim] = total;
  Tensor out = raw::empty(shape, dtype, first.device());
  int64_t offset = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& t : tensors) {
    raw::copy_(raw::narrow(out, dim, offset, t.size(dim)), t);
    offset += t.size(dim);
    sizes.push_back(t.size(dim));
  }
  if (needs_grad(tensors)) {
    record("CatBackward", tensors, {out}, [sizes, dim](std::vector<Tensor>& g) {
      std::vector<Tensor> grads;
      int64_t off = 0;
      for (int64_t s : sizes) {
        grads.push_back(g[0].narrow(dim, off, s));
        off += s;
      }
      return grads;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  TS_CHECK(!tensors.empty(), "stack: expected a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    TS_CHECK(tensors[i].defined(), "stack: tensor ", i, " is undefined");
    TS_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: all tensors must have one shape; tensor ", i, " has ",
             shape_str(tensors[i].shape()), ", tensor 0 ", shape_str(tensors[0].shape()));
  }
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  for (const Tensor& t : tensors) expanded.push_back(unsqueeze(t, dim));
  return cat(expanded, dim);
}

std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim) {
  TS_CHECK(x.defined() && x.dim() > 0, "split: expected a tensor with at least one dimension");
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    TS_CHECK(s >= 0, "split: sizes must be non-negative, got ", shape_str(sizes));
    total += s;
  }
  TS_CHECK(total == x.size(dim), "split: sizes ", shape_str(sizes), " sum to ", total, " but dimension ", dim,
           " has size ", x.size(dim));
  std::vector<Tensor> out;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    out.push_back(narrow(x, dim, offset, s));
    offset += s;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  TS_CHECK(x.defined() && x.dim() > 0, "split: expected a tensor with at least one dimension");
  TS_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  dim = wrap_dim(dim, x.dim(), "split");
  Shape sizes;
  for (int64_t left = x.size(dim); left > 0; left -= split_size) sizes.push_back(std::min(left, split_size));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, dim);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  TS_CHECK(chunks > 0, "chunk: the number of chunks must be positive, got ", chunks);
  TS_CHECK(x.defined() && x.dim() > 0, "chunk: expected a tensor with at least one dimension");
  const int64_t size = x.size(wrap_dim(dim, x.dim(), "chunk"));
  return split(x, std::max<int64_t>(1, (size + chunks - 1) / chunks), dim);
}

// ---- Tensor methods

Tensor Tensor::view(const Shape& shape) const { return tessera::view(*this, shape); }
Tensor Tensor::reshape(const Shape& shape) const { return tessera::reshape(*this, shape); }
Tensor Tensor::permute(const Shape& dims) const { return tessera::permute(*this, dims); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return tessera::transpose(*this, d0, d1); }
Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const { return tessera::narrow(*this, dim, start, length); }
Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  return tessera::slice(*this, dim, start, end, step);
}
Tensor Tensor::select(int64_t dim, int64_t index) const { return tessera::select(*this, dim, index); }
Tensor Tensor::expand(const Shape& shape) const { return tessera::expand(*this, shape); }
Tensor Tensor::squeeze() const { return tessera::squeeze(*this); }
Tensor Tensor::squeeze(int64_t dim) const { return tessera::squeeze(*this, dim); }
Tensor Tensor::unsqueeze(int64_t dim) const { return tessera::unsqueeze(*this, dim); }
Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const { return tessera::flatten(*this, start_dim, end_dim); }
Tensor Tensor::contiguous() const { return tessera::contiguous(*this); }
Tensor Tensor::clone() const { return tessera::clone(*this); }
Tensor Tensor::to(Device device) const { return tessera::to(*this, device); }
Tensor Tensor::to(DType dtype) const { return tessera::to(*this, dtype); }

}  // namespace tessera

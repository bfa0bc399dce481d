// raw:: views: pure metadata arithmetic over shared storage.
#include "core/view.h"

#include <algorithm>
#include <numeric>

namespace tessera::raw {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) TS_CHECK(s >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * element_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1;
  int infer_at = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      TS_CHECK(infer_at < 0, op, ": only one dimension can be -1, got shape ", shape_str(shape));
      infer_at = static_cast<int>(i);
    } else {
      TS_CHECK(out[i] >= 0, op, ": invalid size ", out[i], " in shape ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer_at >= 0) {
    TS_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(shape), " is invalid for ",
             numel, " elements");
    out[infer_at] = numel / known;
  }
  TS_CHECK(shape_numel(out) == numel, op, ": shape ", shape_str(shape), " is invalid for ", numel,
           " elements");
  return out;
}

std::optional<Shape> view_strides(const Shape& old_shape_in, const Shape& old_strides_in,
                                   const Shape& new_shape) {
  Shape old_shape = old_shape_in.empty() ? Shape{1} : old_shape_in;
  Shape old_strides = old_strides_in.empty() ? Shape{1} : old_strides_in;
  Shape new_strides(new_shape.size());
  if (shape_numel(old_shape) == 0) return contiguous_strides(new_shape);
  // Walk the old dimensions in chunks that are contiguous among themselves; each chunk must be
  // covered exactly by consecutive new dimensions.
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    bool chunk_ends = d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
      new_strides[view_d] = view_numel * chunk_base_stride;
      view_numel *= new_shape[view_d];
      --view_d;
    }
    if (view_numel != tensor_numel) return std::nullopt;
    if (d > 0) {
      chunk_base_stride = old_strides[d - 1];
      tensor_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return new_strides;
}

Tensor view(const Tensor& t, const Shape& shape) {
  Shape s = infer_shape(shape, t.numel(), "view");
  auto st = view_strides(t.shape(), t.strides(), s);
  TS_CHECK(st.has_value(), "view: a tensor of shape ", shape_str(t.shape()), " and strides ",
           shape_str(t.strides()), " cannot be viewed as ", shape_str(s),
           " without a copy; use reshape()");
  return make_view(t, s, *st, t.storage_offset());
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  Shape s = infer_shape(shape, t.numel(), "reshape");
  if (auto st = view_strides(t.shape(), t.strides(), s)) return make_view(t, s, *st, t.storage_offset());
  Tensor c = clone(t);
  return make_view(c, s, contiguous_strides(s), 0);
}

Tensor permute(const Tensor& t, const Shape& dims) {
  const int64_t n = t.dim();
  TS_CHECK(static_cast<int64_t>(dims.size()) == n, "permute: expected ", n, " dimensions, got ",
           shape_str(dims));
  std::vector<bool> seen(n, false);
  Shape shape(n), strides(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t d = wrap_dim(dims[i], n, "permute");
    TS_CHECK(!seen[d], "permute: dimension ", d, " repeated in ", shape_str(dims));
    seen[d] = true;
    shape[i] = t.size(d);
    strides[i] = t.stride(d);
  }
  return make_view(t, shape, strides, t.storage_offset());
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  const int64_t n = t.dim();
  if (n == 0) return make_view(t, {}, {}, t.storage_offset());
  d0 = wrap_dim(d0, n, "transpose");
  d1 = wrap_dim(d1, n, "transpose");
  Shape shape = t.shape(), strides = t.strides();
  std::swap(shape[d0], shape[d1]);
  std::swap(strides[d0], strides[d1]);
  return make_view(t, shape, strides, t.storage_offset());
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  TS_CHECK(t.dim() > 0, "narrow: cannot narrow a 0-dimensional tensor");
  dim = wrap_dim(dim, t.dim(), "narrow");
  const int64_t size = t.size(dim);
  if (start < 0) start += size;
  TS_CHECK(start >= 0 && length >= 0 && start + length <= size, "narrow: start ", start, " and length ",
           length, " are out of range for dimension ", dim, " of size ", size);
  Shape shape = t.shape();
  shape[dim] = length;
  return make_view(t, shape, t.strides(), t.storage_offset() + start * t.stride(dim));
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  TS_CHECK(t.dim() > 0, "slice: cannot slice a 0-dimensional tensor");
  TS_CHECK(step > 0, "slice: step must be positive, got ", step);
  dim = wrap_dim(dim, t.dim(), "slice");
  const int64_t size = t.size(dim);
  // Python slice rules: negative indices count from the end, out-of-range ends are clamped.
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Shape shape = t.shape(), strides = t.strides();
  shape[dim] = (end - start + step - 1) / step;
  strides[dim] *= step;
  return make_view(t, shape, strides, t.storage_offset() + start * t.stride(dim));
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  TS_CHECK(t.dim() > 0, "select: cannot select from a 0-dimensional tensor");
  dim = wrap_dim(dim, t.dim(), "select");
  const int64_t size = t.size(dim);
  TS_CHECK(index >= -size && index < size, "select: index ", index, " is out of range for dimension ",
           dim, " of size ", size);
  if (index < 0) index += size;
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return make_view(t, shape, strides, t.storage_offset() + index * t.stride(dim));
}

Tensor expand(const Tensor& t, const Shape& shape) {
  const int64_t n = static_cast<int64_t>(shape.size());
  TS_CHECK(n >= t.dim(), "expand: cannot expand shape ", shape_str(t.shape()), " to fewer dimensions ",
           shape_str(shape));
  Shape out(n), strides(n);
  for (int64_t i = n - 1; i >= 0; --i) {
    const int64_t j = i - (n - t.dim());
    const int64_t have = j >= 0 ? t.size(j) : 1;
    const int64_t want = shape[i] == -1 ? have : shape[i];
    TS_CHECK(j >= 0 || shape[i] != -1, "expand: -1 is not allowed for a new leading dimension in ",
             shape_str(shape));
    if (have == want) {
      out[i] = want;
      strides[i] = j >= 0 ? t.stride(j) : 0;
    } else {
      TS_CHECK(have == 1 && want >= 0, "expand: the size ", have, " at dimension ", j,
               " must be 1 to expand to ", want, " (", shape_str(t.shape()), " -> ", shape_str(shape), ")");
      out[i] = want;
      strides[i] = 0;
    }
  }
  return make_view(t, out, strides, t.storage_offset());
}

Tensor squeeze(const Tensor& t) {
  Shape shape, strides;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) != 1) {
      shape.push_back(t.size(d));
      strides.push_back(t.stride(d));
    }
  return make_view(t, shape, strides, t.storage_offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  if (t.dim() == 0) return make_view(t, {}, {}, t.storage_offset());
  dim = wrap_dim(dim, t.dim(), "squeeze");
  if (t.size(dim) != 1) return make_view(t, t.shape(), t.strides(), t.storage_offset());
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return make_view(t, shape, strides, t.storage_offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape shape = t.shape(), strides = t.strides();
  const int64_t stride = dim < t.dim() ? t.stride(dim) * t.size(dim) : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, stride);
  return make_view(t, shape, strides, t.storage_offset());
}

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  if (t.dim() == 0) return reshape(t, {1});
  start_dim = wrap_dim(start_dim, t.dim(), "flatten");
  end_dim = wrap_dim(end_dim, t.dim(), "flatten");
  TS_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape shape;
  for (int64_t d = 0; d < start_dim; ++d) shape.push_back(t.size(d));
  int64_t merged = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) merged *= t.size(d);
  shape.push_back(merged);
  for (int64_t d = end_dim + 1; d < t.dim(); ++d) shape.push_back(t.size(d));
  return reshape(t, shape);
}

Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : clone(t); }

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  copy_(out, t);
  return out;
}

Tensor to(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  Tensor out = empty(t.shape(), t.dtype(), device);
  copy_(out, t);
  return out;
}

Tensor to(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), dtype, t.device());
  copy_(out, t);
  return out;
}

}  // namespace tessera::raw

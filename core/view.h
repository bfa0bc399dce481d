// raw:: — the non-differentiable tensor primitives that the floors below autograd use: views that
// share storage, layout and dtype conversion, copies between devices. autograd/ wraps each in a
// differentiable op; tensor methods (x.reshape(...)) always go through autograd.
#pragma once

#include <optional>

#include "core/tensor.h"

namespace tessera::raw {

// A tensor sharing base's storage with the given geometry; never part of an autograd graph.
Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);
// A new tensor on `device` of `shape`, contiguous, uninitialised.
Tensor empty(const Shape& shape, DType dtype, Device device);

// Replaces a single -1 in `shape` so that it holds `numel` elements; an Error if impossible.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);
// Strides that let a tensor of (old_shape, old_strides) be seen as new_shape without a copy.
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& new_shape);

Tensor view(const Tensor& t, const Shape& shape);
Tensor reshape(const Tensor& t, const Shape& shape);
Tensor permute(const Tensor& t, const Shape& dims);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step);
Tensor select(const Tensor& t, int64_t dim, int64_t index);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor squeeze(const Tensor& t);
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim);

// Layout, dtype and device conversion. contiguous/to return `t` itself when nothing changes.
Tensor contiguous(const Tensor& t);
Tensor clone(const Tensor& t);
Tensor to(const Tensor& t, Device device);
Tensor to(const Tensor& t, DType dtype);
// Writes src (broadcast to dst's shape, cast to dst's dtype, from any device) into dst.
void copy_(const Tensor& dst, const Tensor& src);
// Writes `value` (cast to dst's dtype) into every element of dst.
void fill_(const Tensor& dst, double value);

}  // namespace tessera::raw

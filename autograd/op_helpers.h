// Helpers shared by the op implementations in autograd/ (not part of the public API).
#pragma once

#include <initializer_list>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/view.h"

namespace tessera::detail {

// An Error unless every defined tensor is on the same device as the first.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);
// An Error unless t is float32/float64.
void check_floating(const char* op, const Tensor& t, const char* what = "input");
// Sorted, unique, wrapped dims (empty stays empty: "all").
Shape normalize_dims(const Shape& dims, int64_t ndim, const char* op);
// x's shape with `dims` removed (or set to 1 when keepdim).
Shape reduced_shape(const Shape& shape, const Shape& dims, bool keepdim);
// x with size-1 dims inserted at `dims` (undoes a reduction without keepdim).
Tensor unsqueeze_dims(const Tensor& x, const Shape& dims);

}  // namespace tessera::detail

// Helpers shared by the op implementations in autograd/ (not part of the public API).
#pragma once

#include <initializer_list>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/view.h"

namespace tessera::detail {

// An Error unless every defined tensor is on the same device as the first.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);
// An Error unless t is float32/float64.
void check_floating(const char* op, const Tensor& t, const char* what = "input");
// x in float32 when it is a half (a composite op on halves runs in float32 and rounds its result
// once, as PyTorch's kernels compute such ops in float), else x itself; undefined stays undefined.
Tensor widen_half(const Tensor& x);
// Autocast at an op's entry (autograd/autocast.h): when autocast applies to `first`, the op calls
// itself again with its inputs cast (each argument wrapped in TS_LOW(...) or TS_F32(...)), with
// autocast suspended, and returns that.
#define TS_AUTOCAST_LOW(first, call)                                               \
  if (::tessera::autocast::applies(first)) {                                       \
    const ::tessera::DType ts_low_ = ::tessera::autocast_dtype((first).device().type); \
    ::tessera::autocast::Suspend ts_suspend_;                                      \
    (void)ts_low_;                                                                 \
    return call;                                                                   \
  }
#define TS_LOW(t) ::tessera::autocast::cast(t, ts_low_)
#define TS_AUTOCAST_F32(first, call)                 \
  if (::tessera::autocast::applies(first)) {         \
    ::tessera::autocast::Suspend ts_suspend_;        \
    return call;                                     \
  }
#define TS_F32(t) ::tessera::autocast::cast(t, ::tessera::DType::Float32)

// Whether a convolution or matrix product of x widens it to float32 around the float32 op: a half
// on the CPU, except bfloat16 while cpu_bf16_kernels() (kernels/conv_settings.h). CUDA never does.
bool widens_on_cpu(const Tensor& x);
// Says once per process (on stderr) that the 16-bit convolutions and products run through float32
// on this device, which is slower than float32 itself.
void note_half_through_float32(const char* op, const Tensor& x);
// Sorted, unique, wrapped dims (empty stays empty: "all").
Shape normalize_dims(const Shape& dims, int64_t ndim, const char* op);
// x's shape with `dims` removed (or set to 1 when keepdim).
Shape reduced_shape(const Shape& shape, const Shape& dims, bool keepdim);
// x with size-1 dims inserted at `dims` (undoes a reduction without keepdim).
Tensor unsqueeze_dims(const Tensor& x, const Shape& dims);

}  // namespace tessera::detail

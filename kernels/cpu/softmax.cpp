// CPU softmax: the column functor under parallel_for, accumulating in double.
#include <cmath>

#include "core/dispatch.h"
#include "kernels/softmax.h"

namespace tessera {

namespace {

// A contiguous row (inner == 1), in separate passes so that each one vectorises: the max and the
// sum in eight lanes (the sum in double), exp(x - max) into y, then the scaling.
template <class T>
void softmax_row(const T* x, T* y, int64_t D, bool log) {
  constexpr int kLanes = 8;
  T mx[kLanes];
  for (int k = 0; k < kLanes; ++k) mx[k] = math::lowest<T>();
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int k = 0; k < kLanes; ++k) mx[k] = x[d + k] > mx[k] || x[d + k] != x[d + k] ? x[d + k] : mx[k];
  T m = math::lowest<T>();
  for (int k = 0; k < kLanes; ++k) m = math::maximum(m, mx[k]);
  for (; d < D; ++d) m = math::maximum(m, x[d]);
  for (d = 0; d < D; ++d) y[d] = math::exp_nonpositive(x[d] - m);
  double sums[kLanes] = {};
  for (d = 0; d + kLanes <= D; d += kLanes)
    for (int k = 0; k < kLanes; ++k) sums[k] += static_cast<double>(y[d + k]);
  double sum = 0;
  for (int k = 0; k < kLanes; ++k) sum += sums[k];
  for (; d < D; ++d) sum += static_cast<double>(y[d]);
  if (log) {
    const T lse = m + static_cast<T>(std::log(sum));
    for (d = 0; d < D; ++d) y[d] = x[d] - lse;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
    for (d = 0; d < D; ++d) y[d] *= inv;
  }
}

}  // namespace

void softmax_kernel_cpu(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log) {
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(D, 1));
  dispatch_floating(x.dtype(), "softmax", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    if (inner == 1) {
      parallel_for(outer, [&](int64_t r) { softmax_row(px + r * D, py + r * D, D, log); }, grain);
    } else {
      parallel_for(outer * inner, SoftmaxColumnKernel<T, double>{px, py, D, inner, log}, grain);
    }
  });
}

void softmax_backward_kernel_cpu(const Tensor& gx, const Tensor& g, const Tensor& y, int64_t outer, int64_t D,
                                 int64_t inner, bool log) {
  dispatch_floating(y.dtype(), "softmax_backward", [&]<class T>() {
    parallel_for(outer * inner,
                 SoftmaxBackwardColumnKernel<T, double>{g.data<T>(), y.data<T>(), gx.data<T>(), D, inner, log},
                 std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(D, 1)));
  });
}

void softmax_kernel(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log) {
  if (y.numel() == 0) return;
  if (y.is_cuda()) TS_CUDA_CALL(softmax_kernel_cuda(y, x, outer, D, inner, log));
  else softmax_kernel_cpu(y, x, outer, D, inner, log);
}

void softmax_backward_kernel(const Tensor& gx, const Tensor& g, const Tensor& y, int64_t outer, int64_t D,
                             int64_t inner, bool log) {
  if (gx.numel() == 0) return;
  if (gx.is_cuda()) TS_CUDA_CALL(softmax_backward_kernel_cuda(gx, g, y, outer, D, inner, log));
  else softmax_backward_kernel_cpu(gx, g, y, outer, D, inner, log);
}

}  // namespace tessera

// softmax / log_softmax along one dim, forward and backward. The input is contiguous, viewed as
// [outer, D, inner] with the softmax over D. The column functor (one (outer, inner) line per call)
// is the CPU kernel and the CUDA kernel for inner > 1; rows (inner == 1) on CUDA get a
// block-per-row kernel with warp reductions (kernels/cuda/softmax.cu). The numerics are the same:
// subtract the max, exponentiate, divide by (or subtract the log of) the sum.
#pragma once

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace tessera {

// One exponential per element: exp(x - max) is computed in T, written to y (softmax) and summed
// in Acc; a last pass scales y by 1/sum, or writes x - max - log(sum) (log_softmax).
template <class T, class Acc>
struct SoftmaxColumnKernel {
  const T* x;
  T* y;
  int64_t D, inner;
  bool log;
  TS_HD void operator()(int64_t i) const {
    const int64_t base = (i / inner) * D * inner + i % inner;
    T mx = math::lowest<T>();
    for (int64_t d = 0; d < D; ++d) mx = math::maximum(mx, x[base + d * inner]);
    Acc sum = 0;
    for (int64_t d = 0; d < D; ++d) {
      const T e = math::exp(x[base + d * inner] - mx);
      if (!log) y[base + d * inner] = e;
      sum += static_cast<Acc>(e);
    }
    if (log) {
      const T lse = mx + static_cast<T>(math::log(sum));
      for (int64_t d = 0; d < D; ++d) y[base + d * inner] = x[base + d * inner] - lse;
    } else {
      const T inv = static_cast<T>(Acc(1) / sum);
      for (int64_t d = 0; d < D; ++d) y[base + d * inner] *= inv;
    }
  }
};

// softmax:     gx = y * (g - sum(g * y))
// log_softmax: gx = g - exp(y) * sum(g)
template <class T, class Acc>
struct SoftmaxBackwardColumnKernel {
  const T* g;
  const T* y;
  T* gx;
  int64_t D, inner;
  bool log;
  TS_HD void operator()(int64_t i) const {
    const int64_t base = (i / inner) * D * inner + i % inner;
    Acc dot = 0;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = base + d * inner;
      dot += log ? static_cast<Acc>(g[k]) : static_cast<Acc>(g[k]) * static_cast<Acc>(y[k]);
    }
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = base + d * inner;
      const Acc gk = static_cast<Acc>(g[k]), yk = static_cast<Acc>(y[k]);
      gx[k] = static_cast<T>(log ? gk - math::exp(yk) * dot : yk * (gk - dot));
    }
  }
};

// x, y (and g, gx): contiguous, [outer, D, inner].
void softmax_kernel(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log);
void softmax_backward_kernel(const Tensor& gx, const Tensor& g, const Tensor& y, int64_t outer, int64_t D,
                             int64_t inner, bool log);
void softmax_kernel_cpu(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log);
void softmax_backward_kernel_cpu(const Tensor& gx, const Tensor& g, const Tensor& y, int64_t outer, int64_t D,
                                 int64_t inner, bool log);
void softmax_kernel_cuda(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log);
void softmax_backward_kernel_cuda(const Tensor& gx, const Tensor& g, const Tensor& y, int64_t outer, int64_t D,
                                  int64_t inner, bool log);

}  // namespace tessera

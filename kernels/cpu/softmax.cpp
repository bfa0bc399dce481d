// CPU softmax: the column functor under parallel_for, accumulating in double.
#include "core/dispatch.h"
#include "kernels/softmax.h"

namespace tessera {

void softmax_kernel_cpu(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log) {
  dispatch_floating(x.dtype(), "softmax", [&]<class T>() {
    parallel_for(outer * inner, SoftmaxColumnKernel<T, double>{x.data<T>(), y.data<T>(), D, inner, log},
                 std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(D, 1)));
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

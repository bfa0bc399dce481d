// Pooling: routing and the CPU launches.
#include "core/dispatch.h"
#include "kernels/pool.h"

namespace tessera {

void max_pool2d_kernel_cpu(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dGeometry& g) {
  max_pool2d_impl(CpuLaunch{}, y, indices, x, g);
}
void max_pool2d_backward_kernel_cpu(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dGeometry& g) {
  max_pool2d_backward_impl(CpuLaunch{}, grad_in, grad_out, indices, g);
}

void max_pool2d_kernel(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dGeometry& g) {
  if (y.numel() == 0) return;
  if (x.is_cuda()) TS_CUDA_CALL(max_pool2d_kernel_cuda(y, indices, x, g));
  else max_pool2d_kernel_cpu(y, indices, x, g);
}
void max_pool2d_backward_kernel(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dGeometry& g) {
  if (grad_in.numel() == 0) return;
  if (grad_in.is_cuda()) TS_CUDA_CALL(max_pool2d_backward_kernel_cuda(grad_in, grad_out, indices, g));
  else max_pool2d_backward_kernel_cpu(grad_in, grad_out, indices, g);
}

}  // namespace tessera

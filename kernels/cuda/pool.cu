// CUDA launches of the pooling kernels (kernels/pool.h).
// Nothing here is CUDA-only: the CPU tests run the same per-element bodies (the CPU also has
// range() fast paths, compared with these under CpuPerElementScope).
#include "core/cuda/launch.cuh"
#include "kernels/pool.h"

namespace tessera {

void max_pool2d_kernel_cuda(const Tensor& y, const Tensor& indices, const Tensor& x, const Pool2dGeometry& g) {
  max_pool2d_impl(CudaLaunch{x.device().index}, y, indices, x, g);
}
void max_pool2d_backward_kernel_cuda(const Tensor& grad_in, const Tensor& grad_out, const Tensor& indices, const Pool2dGeometry& g) {
  max_pool2d_backward_impl(CudaLaunch{grad_in.device().index}, grad_in, grad_out, indices, g);
}

}  // namespace tessera

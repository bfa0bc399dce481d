// CUDA launches of the resampling kernels (kernels/resize.h).
// Nothing here is CUDA-only: the CPU tests run the same per-element bodies (CpuPerElementScope).
#include "core/cuda/launch.cuh"
#include "kernels/resize.h"

namespace tessera {

void resize_kernel_cuda(const Tensor& y, const Tensor& x, const ResizeParams& p, const ResizeTables& t) {
  resize_impl(CudaLaunch{x.device().index}, y, x, p, t);
}
void resize_backward_kernel_cuda(const Tensor& gx, const Tensor& gy, const ResizeParams& p, const ResizeTables& t) {
  resize_backward_impl(CudaLaunch{gx.device().index}, gx, gy, p, t);
}

}  // namespace tessera

// CUDA launches of the padding kernels (kernels/pad.h).
// Nothing here is CUDA-only: the CPU runs the same per-element bodies.
#include "core/cuda/launch.cuh"
#include "kernels/pad.h"

namespace tessera {

void pad_kernel_cuda(const Tensor& y, const Tensor& x, const PadGeometry& g, double value) {
  pad_impl(CudaLaunch{x.device().index}, y, x, g, value);
}
void pad_backward_kernel_cuda(const Tensor& gx, const Tensor& gy, const PadGeometry& g) {
  pad_backward_impl(CudaLaunch{gx.device().index}, gx, gy, g);
}

}  // namespace tessera

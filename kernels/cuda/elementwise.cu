// CUDA launches of the elementwise kernels (kernels/elementwise.h).
// Nothing here is CUDA-only: the CPU tests run the same per-element bodies (CpuPerElementScope).
#include "core/cuda/launch.cuh"
#include "kernels/elementwise.h"

namespace tessera {

void unary_kernel_cuda(UnaryOp op, const Tensor& out, const Tensor& in, double p0, double p1) {
  unary_kernel(CudaLaunch{out.device().index}, op, out, in, p0, p1);
}
void binary_kernel_cuda(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  binary_kernel(CudaLaunch{out.device().index}, op, out, a, b);
}
void binary_scalar_kernel_cuda(BinaryOp op, const Tensor& out, const Tensor& a, double s, bool scalar_first) {
  binary_scalar_kernel(CudaLaunch{out.device().index}, op, out, a, s, scalar_first);
}
void where_kernel_cuda(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b, double scalar) {
  where_kernel(CudaLaunch{out.device().index}, out, cond, a, b, scalar);
}

}  // namespace tessera

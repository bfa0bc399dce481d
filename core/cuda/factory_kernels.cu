// CUDA launches of the tensor-making kernels.
// Nothing here is CUDA-only: the CPU runs the same per-element bodies.
#include "core/cuda/launch.cuh"
#include "core/factory_kernels.h"

namespace tessera {

void fill_kernel_cuda(const Tensor& dst, double value) { fill_kernel(CudaLaunch{dst.device().index}, dst, value); }
void arange_kernel_cuda(const Tensor& out, double start, double step) {
  arange_kernel(CudaLaunch{out.device().index}, out, start, step);
}
void linspace_kernel_cuda(const Tensor& out, double start, double end) {
  linspace_kernel(CudaLaunch{out.device().index}, out, start, end);
}
void random_kernel_cuda(const Tensor& out, RandomDist dist, double low, double high, uint64_t seed, uint64_t offset) {
  random_kernel(CudaLaunch{out.device().index}, out, dist, low, high, seed, offset);
}

}  // namespace tessera

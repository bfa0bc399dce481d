// The CUDA half of "one kernel body, two loops": a grid-stride launcher for TS_HD functors.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/parallel.h"

namespace tessera::cuda {

template <class F>
__global__ void grid_stride_kernel(int64_t n, F f) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

inline constexpr int kBlockSize = 256;

// Blocks for n elements: enough to fill the device several times over, not one per element.
int grid_size_for(int64_t n, int block_size = kBlockSize);

}  // namespace tessera::cuda

namespace tessera {

// The CUDA launcher that kernels/<op>.h implementations are templated on.
struct CudaLaunch {
  int device = 0;
  template <class F>
  void operator()(int64_t n, const F& f, const char* name = "grid_stride_kernel") const {
    if (n <= 0) return;
    cuda::DeviceGuard guard(device);
    cuda::grid_stride_kernel<<<cuda::grid_size_for(n), cuda::kBlockSize, 0, cuda::stream(device)>>>(n, f);
    TS_CUDA_CHECK_LAUNCH(name);
  }
  static constexpr bool is_cuda = true;
};

}  // namespace tessera

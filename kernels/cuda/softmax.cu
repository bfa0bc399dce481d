// CUDA softmax: a block per row when the softmax dim is innermost (inner == 1), with the max and
// the sum reduced by warp shuffles; otherwise the shared column functor, one thread per line.
// CUDA-only: the row kernels' block reductions (max and sum, plain arithmetic); their results are
// compared with the CPU's in the op table's CudaMatchesCpu cases.
#include "core/cuda/launch.cuh"
#include "kernels/softmax.h"

namespace tessera {

namespace {

constexpr int kThreads = 256;

template <class T>
__device__ T block_all_reduce(T v, bool is_max) {
  __shared__ T smem[kThreads / 32];
  for (int delta = 16; delta > 0; delta /= 2) {
    const T o = __shfl_down_sync(0xffffffffu, v, delta);
    v = is_max ? math::maximum(v, o) : v + o;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? smem[lane] : (is_max ? math::lowest<T>() : T(0));
    for (int delta = 16; delta > 0; delta /= 2) {
      const T o = __shfl_down_sync(0xffffffffu, v, delta);
      v = is_max ? math::maximum(v, o) : v + o;
    }
    if (lane == 0) smem[0] = v;
  }
  __syncthreads();
  const T result = smem[0];
  __syncthreads();  // smem is reused by the next call
  return result;
}

template <class T>
__global__ void softmax_rows_kernel(const T* x, T* y, int64_t rows, int64_t D, bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    T mx = math::lowest<T>();
    for (int64_t d = threadIdx.x; d < D; d += kThreads) mx = math::maximum(mx, xr[d]);
    mx = block_all_reduce(mx, true);
    T sum = 0;
    for (int64_t d = threadIdx.x; d < D; d += kThreads) sum += math::exp(xr[d] - mx);
    sum = block_all_reduce(sum, false);
    if (log) {
      const T lse = mx + math::log(sum);
      for (int64_t d = threadIdx.x; d < D; d += kThreads) yr[d] = xr[d] - lse;
    } else {
      const T inv = T(1) / sum;
      for (int64_t d = threadIdx.x; d < D; d += kThreads) yr[d] = math::exp(xr[d] - mx) * inv;
    }
  }
}

template <class T>
__global__ void softmax_backward_rows_kernel(const T* g, const T* y, T* gx, int64_t rows, int64_t D, bool log) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* gr = g + row * D;
    const T* yr = y + row * D;
    T* gxr = gx + row * D;
    T dot = 0;
    for (int64_t d = threadIdx.x; d < D; d += kThreads) dot += log ? gr[d] : gr[d] * yr[d];
    dot = block_all_reduce(dot, false);
    for (int64_t d = threadIdx.x; d < D; d += kThreads)
      gxr[d] = log ? gr[d] - math::exp(yr[d]) * dot : yr[d] * (gr[d] - dot);
  }
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(rows, 65535 * 4)); }

}  // namespace

void softmax_kernel_cuda(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log) {
  const int device = x.device().index;
  dispatch_floating(x.dtype(), "softmax", [&]<class T>() {
    if (inner == 1) {
      cuda::DeviceGuard guard(device);
      softmax_rows_kernel<<<row_blocks(outer), kThreads, 0, cuda::stream(device)>>>(x.data<T>(), y.data<T>(), outer, D, log);
      TS_CUDA_CHECK_LAUNCH("softmax_rows_kernel");
    } else {
      CudaLaunch{device}(outer * inner, SoftmaxColumnKernel<T, T>{x.data<T>(), y.data<T>(), D, inner, log},
                         "softmax_column_kernel");
    }
  });
}

void softmax_backward_kernel_cuda(const Tensor& gx, const Tensor& g, const Tensor& y, int64_t outer, int64_t D,
                                  int64_t inner, bool log) {
  const int device = y.device().index;
  dispatch_floating(y.dtype(), "softmax_backward", [&]<class T>() {
    if (inner == 1) {
      cuda::DeviceGuard guard(device);
      softmax_backward_rows_kernel<<<row_blocks(outer), kThreads, 0, cuda::stream(device)>>>(
          g.data<T>(), y.data<T>(), gx.data<T>(), outer, D, log);
      TS_CUDA_CHECK_LAUNCH("softmax_backward_rows_kernel");
    } else {
      CudaLaunch{device}(outer * inner,
                         SoftmaxBackwardColumnKernel<T, T>{g.data<T>(), y.data<T>(), gx.data<T>(), D, inner, log},
                         "softmax_backward_column_kernel");
    }
  });
}

}  // namespace tessera

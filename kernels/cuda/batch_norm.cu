// CUDA batch-norm pieces: per-channel moments with one block per channel (each thread strides the
// channel's N x S elements, then a warp-shuffle tree), and the shared channel-affine body.
#include "core/cuda/launch.cuh"
#include "kernels/batch_norm.h"

namespace tessera {

namespace {

constexpr int kThreads = 256;

template <class T>
__device__ T block_sum(T v) {
  __shared__ T smem[kThreads / 32];
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < kThreads / 32 ? smem[threadIdx.x] : T(0);
    for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  }
  __syncthreads();
  return v;  // valid in thread 0
}

template <class T>
__global__ void channel_moments_kernel(const T* a, const T* b, const T* sa, const T* sb, T* s1, T* s2, int64_t N,
                                       int64_t C, int64_t S) {
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const T ka = sa ? sa[c] : T(0), kb = sb ? sb[c] : T(0);
    T t1 = 0, t2 = 0;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t base = (n * C + c) * S;
      for (int64_t s = threadIdx.x; s < S; s += kThreads) {
        const T av = a[base + s];
        t1 += av;
        if (b) t2 += (av - ka) * (b[base + s] - kb);
      }
    }
    t1 = block_sum(t1);
    t2 = block_sum(t2);
    if (threadIdx.x == 0) {
      s1[c] = t1;
      if (s2) s2[c] = t2;
    }
  }
}

}  // namespace

void channel_moments_kernel_cuda(const Tensor& s1, const Tensor& s2, const Tensor& a, const Tensor& b, const Tensor& sa,
                                 const Tensor& sb, int64_t N, int64_t C, int64_t S) {
  const int device = a.device().index;
  cuda::DeviceGuard guard(device);
  dispatch_floating(a.dtype(), "batch_norm", [&]<class T>() {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(C, 65535));
    channel_moments_kernel<<<blocks, kThreads, 0, cuda::stream(device)>>>(
        a.data<T>(), b.defined() ? b.data<T>() : nullptr, sa.defined() ? sa.data<T>() : nullptr,
        sb.defined() ? sb.data<T>() : nullptr, s1.data<T>(), s2.defined() ? s2.data<T>() : nullptr, N, C, S);
    TS_CUDA_CHECK_LAUNCH("channel_moments_kernel");
  });
}

void channel_affine_kernel_cuda(const Tensor& out, const Tensor& u, const Tensor& v, const Tensor& ka, const Tensor& kb,
                                const Tensor& kd, int64_t C, int64_t S) {
  channel_affine_impl(CudaLaunch{out.device().index}, out, u, v, ka, kb, kd, C, S);
}

}  // namespace tessera

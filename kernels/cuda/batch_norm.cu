// CUDA batch-norm pieces: per-channel moments, each channel's N x S elements split over several
// blocks (enough to fill the device: one block per channel left most of an H100 idle at C = 64),
// every thread folding a strided share in double (ChannelMomentsPartial::fold, kernels/batch_norm.h),
// a block tree of the double sums, then ChannelMomentsCombine adding each channel's partials in
// split order; and the shared channel-affine body. CUDA-only here: the block tree.
#include "core/cuda/launch.cuh"
#include "core/view.h"
#include "kernels/batch_norm.h"

namespace tessera {

namespace {

constexpr int kThreads = 256;

__device__ double block_sum(double v) {
  __shared__ double smem[kThreads / 32];
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < kThreads / 32 ? smem[threadIdx.x] : 0.0;
    for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  }
  __syncthreads();  // smem is reused by the next call
  return v;         // valid in thread 0
}

// Block (split = blockIdx.x, channel = blockIdx.y + k * gridDim.y).
template <class T>
__global__ void channel_moments_partial_kernel(ChannelMomentsPartial<T> k) {
  const int64_t split = blockIdx.x;
  for (int64_t c = blockIdx.y; c < k.C; c += gridDim.y) {
    MomentSums m;
    const int64_t e0 = k.begin(split) + threadIdx.x, e1 = k.end(split);
    int64_t n = e0 / k.S, s = e0 % k.S;  // one division; then (n, s) advance by kThreads
    for (int64_t e = e0; e < e1; e += kThreads) {
      k.fold(m, c, n, s);
      s += kThreads;
      if (s >= k.S) {  // wrapped into a later image
        n += s / k.S;
        s %= k.S;
      }
    }
    m.s1 = block_sum(m.s1);
    m.s2 = block_sum(m.s2);
    if (threadIdx.x == 0) k.partial[c * k.splits + split] = m;
  }
}

}  // namespace

void channel_moments_kernel_cuda(const Tensor& s1, const Tensor& s2, const Tensor& a, const Tensor& b, const Tensor& sa,
                                 const Tensor& sb, int64_t N, int64_t C, int64_t S) {
  if (C == 0) return;
  const int device = a.device().index;
  cuda::DeviceGuard guard(device);
  int sms = 0;
  TS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t splits = moment_splits(C, N * S, 4 * static_cast<int64_t>(sms));
  Tensor partial = raw::empty({C * splits * static_cast<int64_t>(sizeof(MomentSums))}, DType::UInt8, a.device());
  auto* p = static_cast<MomentSums*>(partial.data_ptr());
  dispatch_floating(a.dtype(), "batch_norm", [&]<class T>() {
    const ChannelMomentsPartial<T> k{a.data<T>(), b.defined() ? b.data<T>() : nullptr, sa.defined() ? sa.data<T>() : nullptr,
                                     sb.defined() ? sb.data<T>() : nullptr, N, C, S, splits, (N * S + splits - 1) / splits, p};
    dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(std::min<int64_t>(C, 65535)));
    channel_moments_partial_kernel<<<grid, kThreads, 0, cuda::stream(device)>>>(k);
    TS_CUDA_CHECK_LAUNCH("channel_moments_partial_kernel");
    CudaLaunch{device}(C, ChannelMomentsCombine<T>{p, splits, s1.data<T>(), s2.defined() ? s2.data<T>() : nullptr},
                       "channel_moments_combine_kernel");
  });
}

void channel_affine_kernel_cuda(const Tensor& out, const Tensor& u, const Tensor& v, const Tensor& ka, const Tensor& kb,
                                const Tensor& kd, int64_t C, int64_t S) {
  channel_affine_impl(CudaLaunch{out.device().index}, out, u, v, ka, kb, kd, C, S);
}

}  // namespace tessera

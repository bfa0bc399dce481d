// CPU batch-norm pieces: per-channel moments (a thread per channel range, eight double lanes over
// each contiguous S run) and the shared channel-affine body. Routing for both devices.
#include <vector>

#include "core/dispatch.h"
#include "kernels/batch_norm.h"

namespace tessera {

void channel_moments_kernel_cpu(const Tensor& s1, const Tensor& s2, const Tensor& a, const Tensor& b, const Tensor& sa,
                                const Tensor& sb, int64_t N, int64_t C, int64_t S) {
  dispatch_floating(a.dtype(), "batch_norm", [&]<class T>() {
    const T* pa = a.data<T>();
    const T* pb = b.defined() ? b.data<T>() : nullptr;
    const T* psa = sa.defined() ? sa.data<T>() : nullptr;
    const T* psb = sb.defined() ? sb.data<T>() : nullptr;
    T* o1 = s1.data<T>();
    T* o2 = s2.defined() ? s2.data<T>() : nullptr;
    parallel_chunks(C, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        constexpr int kLanes = 8;
        double l1[kLanes] = {}, l2[kLanes] = {};
        const double ka = psa ? psa[c] : 0.0, kb = psb ? psb[c] : 0.0;
        double t1 = 0, t2 = 0;
        for (int64_t n = 0; n < N; ++n) {
          const T* ra = pa + (n * C + c) * S;
          const T* rb = pb ? pb + (n * C + c) * S : nullptr;
          int64_t s = 0;
          for (; s + kLanes <= S; s += kLanes)
            for (int k = 0; k < kLanes; ++k) {
              l1[k] += static_cast<double>(ra[s + k]);
              if (rb) l2[k] += (static_cast<double>(ra[s + k]) - ka) * (static_cast<double>(rb[s + k]) - kb);
            }
          for (; s < S; ++s) {
            t1 += static_cast<double>(ra[s]);
            if (rb) t2 += (static_cast<double>(ra[s]) - ka) * (static_cast<double>(rb[s]) - kb);
          }
        }
        for (int k = 0; k < kLanes; ++k) {
          t1 += l1[k];
          t2 += l2[k];
        }
        o1[c] = static_cast<T>(t1);
        if (o2) o2[c] = static_cast<T>(t2);
      }
    });
  });
}

void channel_affine_kernel_cpu(const Tensor& out, const Tensor& u, const Tensor& v, const Tensor& ka, const Tensor& kb,
                               const Tensor& kd, int64_t C, int64_t S) {
  channel_affine_impl(CpuLaunch{}, out, u, v, ka, kb, kd, C, S);
}

// The GPU's split-and-combine on the CPU (cpu_per_element(), for the tests): the same partials
// (as many as a 132-multiprocessor device gets) and the same fixed-order combine.
void channel_moments_split_cpu(const Tensor& s1, const Tensor& s2, const Tensor& a, const Tensor& b, const Tensor& sa,
                               const Tensor& sb, int64_t N, int64_t C, int64_t S) {
  dispatch_floating(a.dtype(), "batch_norm", [&]<class T>() {
    const int64_t splits = moment_splits(C, N * S, 4 * 132);
    std::vector<MomentSums> partial(static_cast<size_t>(C * splits));
    CpuLaunch{}(C * splits,
                ChannelMomentsPartial<T>{a.data<T>(), b.defined() ? b.data<T>() : nullptr, sa.defined() ? sa.data<T>() : nullptr,
                                         sb.defined() ? sb.data<T>() : nullptr, N, C, S, splits,
                                         (N * S + splits - 1) / splits, partial.data()});
    CpuLaunch{}(C, ChannelMomentsCombine<T>{partial.data(), splits, s1.data<T>(), s2.defined() ? s2.data<T>() : nullptr});
  });
}

void channel_moments_kernel(const Tensor& s1, const Tensor& s2, const Tensor& a, const Tensor& b, const Tensor& sa,
                            const Tensor& sb, int64_t N, int64_t C, int64_t S) {
  if (a.is_cuda()) TS_CUDA_CALL(channel_moments_kernel_cuda(s1, s2, a, b, sa, sb, N, C, S));
  else if (cpu_per_element()) channel_moments_split_cpu(s1, s2, a, b, sa, sb, N, C, S);
  else channel_moments_kernel_cpu(s1, s2, a, b, sa, sb, N, C, S);
}

void channel_affine_kernel(const Tensor& out, const Tensor& u, const Tensor& v, const Tensor& ka, const Tensor& kb,
                           const Tensor& kd, int64_t C, int64_t S) {
  if (out.numel() == 0) return;
  if (out.is_cuda()) TS_CUDA_CALL(channel_affine_kernel_cuda(out, u, v, ka, kb, kd, C, S));
  else channel_affine_kernel_cpu(out, u, v, ka, kb, kd, C, S);
}

}  // namespace tessera

// Batch-norm building blocks over x viewed as [N, C, S] (S = product of the spatial dims):
//   channel_moments: per channel c, S1[c] = sum a and S2[c] = sum (a - sa[c]) * (b - sb[c]) —
//     the mean, the variance (a = b = x, shifts = mean) and the backward sums (a = grad,
//     b = x, sb = mean) are all this one reduction. CPU: a thread per channel range, eight lanes in
//     double; CUDA: a block per channel with warp shuffles (kernels/cuda/batch_norm.cu).
//   channel_affine: out = u * ka[c] + v * kb[c] + kd[c] — the forward normalisation and the
//     backward are both this one elementwise body, shared by the two devices.
#pragma once

#include "core/parallel.h"
#include "core/tensor.h"

namespace tessera {

template <class T>
struct ChannelAffineKernel {
  T* out;
  const T* u;
  const T* v;  // may be null: then kb is unused
  const T* ka;
  const T* kb;
  const T* kd;
  int64_t C, S;
  TS_HD void operator()(int64_t i) const {
    const int64_t c = (i / S) % C;
    T r = u[i] * ka[c] + kd[c];
    if (v) r += v[i] * kb[c];
    out[i] = r;
  }
};

// a, b: contiguous [N, C, S] (b may be undefined: S2 is not computed); sa, sb: [C] shifts or
// undefined (zero). s1, s2: [C] outputs of a's dtype.
void channel_moments_kernel(const Tensor& s1, const Tensor& s2, const Tensor& a, const Tensor& b, const Tensor& sa,
                            const Tensor& sb, int64_t N, int64_t C, int64_t S);
// out = u * ka[c] + v * kb[c] + kd[c]; v undefined means no second term.
void channel_affine_kernel(const Tensor& out, const Tensor& u, const Tensor& v, const Tensor& ka, const Tensor& kb,
                           const Tensor& kd, int64_t C, int64_t S);

void channel_moments_kernel_cpu(const Tensor& s1, const Tensor& s2, const Tensor& a, const Tensor& b, const Tensor& sa,
                                const Tensor& sb, int64_t N, int64_t C, int64_t S);
void channel_moments_kernel_cuda(const Tensor& s1, const Tensor& s2, const Tensor& a, const Tensor& b, const Tensor& sa,
                                 const Tensor& sb, int64_t N, int64_t C, int64_t S);
void channel_affine_kernel_cpu(const Tensor& out, const Tensor& u, const Tensor& v, const Tensor& ka, const Tensor& kb,
                               const Tensor& kd, int64_t C, int64_t S);
void channel_affine_kernel_cuda(const Tensor& out, const Tensor& u, const Tensor& v, const Tensor& ka, const Tensor& kb,
                                const Tensor& kd, int64_t C, int64_t S);

template <class Launch>
void channel_affine_impl(const Launch& L, const Tensor& out, const Tensor& u, const Tensor& v, const Tensor& ka,
                         const Tensor& kb, const Tensor& kd, int64_t C, int64_t S) {
  dispatch_floating(out.dtype(), "batch_norm", [&]<class T>() {
    L(out.numel(),
      ChannelAffineKernel<T>{out.data<T>(), u.data<T>(), v.defined() ? v.data<T>() : nullptr, ka.data<T>(),
                             kb.defined() ? kb.data<T>() : nullptr, kd.data<T>(), C, S},
      "channel_affine_kernel");
  });
}

}  // namespace tessera

// Batch-norm building blocks over x viewed as [N, C, S] (S = product of the spatial dims):
//   channel_moments: per channel c, S1[c] = sum a and S2[c] = sum (a - sa[c]) * (b - sb[c]) —
//     the mean, the variance (a = b = x, shifts = mean) and the backward sums (a = grad,
//     b = x, sb = mean) are all this one reduction, accumulated in double on both devices. CPU: a
//     thread per channel range, eight double lanes; CUDA: each channel's N x S elements split over
//     several blocks (ChannelMomentsPartial: every thread folds a strided share, then a block tree),
//     the partial sums combined in a fixed order (ChannelMomentsCombine), so results do not depend
//     on timing. The fold and the combine are here; the CPU runs them under cpu_per_element().
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

// The two sums of one channel's share, in double whatever the tensors' dtype.
struct MomentSums {
  double s1 = 0, s2 = 0;
};

// How many partial sums each channel's N * S elements are split into: enough (channel, split)
// blocks to fill `blocks_wanted`, at least 4096 elements each.
inline int64_t moment_splits(int64_t C, int64_t NS, int64_t blocks_wanted) {
  int64_t splits = (blocks_wanted + C - 1) / (C > 0 ? C : 1);
  const int64_t most = (NS + 4095) / 4096;
  if (splits > most) splits = most;
  if (splits > 1024) splits = 1024;
  return splits < 1 ? 1 : splits;
}

// Partial moments: element e of channel c (e = n * S + s over the channel's N * S elements); the
// partial (c, split) covers e in [split * chunk, min((split + 1) * chunk, N * S)).
template <class T>
struct ChannelMomentsPartial {
  const T* a;
  const T* b;   // may be null: s2 stays 0
  const T* sa;  // shifts, may be null (0)
  const T* sb;
  int64_t N, C, S, splits, chunk;
  MomentSums* partial;  // [C * splits]
  // Folds the element at (n, s) of channel c.
  TS_HD void fold(MomentSums& m, int64_t c, int64_t n, int64_t s) const {
    const int64_t at = (n * C + c) * S + s;
    const double av = static_cast<double>(a[at]);
    m.s1 += av;
    if (b) m.s2 += (av - (sa ? static_cast<double>(sa[c]) : 0.0)) * (static_cast<double>(b[at]) - (sb ? static_cast<double>(sb[c]) : 0.0));
  }
  TS_HD int64_t begin(int64_t split) const { return split * chunk; }
  TS_HD int64_t end(int64_t split) const { return (split + 1) * chunk < N * S ? (split + 1) * chunk : N * S; }
  // The CPU's execution: partial i = (c, split), its elements folded in order.
  TS_HD void operator()(int64_t i) const {
    const int64_t c = i / splits, split = i % splits;
    MomentSums m;
    for (int64_t e = begin(split); e < end(split); ++e) fold(m, c, e / S, e % S);
    partial[i] = m;
  }
};

// s1[c] (and s2[c]) = the channel's partial sums added in split order, rounded to T once.
template <class T>
struct ChannelMomentsCombine {
  const MomentSums* partial;
  int64_t splits;
  T* s1;
  T* s2;  // may be null
  TS_HD void operator()(int64_t c) const {
    MomentSums m;
    for (int64_t k = 0; k < splits; ++k) {
      m.s1 += partial[c * splits + k].s1;
      m.s2 += partial[c * splits + k].s2;
    }
    s1[c] = static_cast<T>(m.s1);
    if (s2) s2[c] = static_cast<T>(m.s2);
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

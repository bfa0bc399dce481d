// CPU softmax: the column functor under parallel_for, accumulating in double.
#include <cmath>
#include <cstring>

#include "core/dispatch.h"
#include "kernels/softmax.h"

namespace tessera {

namespace {

// GCC/clang vectors as wide as the target's registers (AVX-512: 64 bytes; else 32). Wider
// vectors than the registers are split by the compiler into spills and scalar inserts: the
// 64-byte code written for AVX-512 ran softmax of 4096 x 1000 rows at 1.7x PyTorch's time on an
// AVX2 machine. vec: a register of T; narrow: the T whose conversion to double fills a register of
// double (a half register of float, a whole one of double). A typedef in a specialisation: the
// attribute is lost on an alias of a dependent type.
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#else
constexpr int kVecBytes = 32;
#endif
template <class T>
struct Simd;
template <>
struct Simd<float> {
  typedef float vec __attribute__((vector_size(kVecBytes)));
  typedef float narrow __attribute__((vector_size(kVecBytes / 2)));
};
template <>
struct Simd<double> {
  typedef double vec __attribute__((vector_size(kVecBytes)));
  typedef double narrow __attribute__((vector_size(kVecBytes)));
};

// The largest value of x[0, D), NaNs left out, in two registers of lanes. Under strict IEEE rules
// the compiler vectorises no float max with a NaN test, in lanes or as a reduction: the pass ran
// scalar, and softmax of 4096 x 1000 rows took 1.9x PyTorch's time. Softmax needs no NaN here: a
// NaN in the row makes its exp and the row's sum NaN, so every output is NaN, as with a NaN
// maximum.
template <class T>
T row_max_ignoring_nan(const T* x, int64_t D) {
  constexpr int kLanes = kVecBytes / static_cast<int>(sizeof(T));
  using Vec = typename Simd<T>::vec;
  Vec m0, m1;
  for (int k = 0; k < kLanes; ++k) m0[k] = m1[k] = math::lowest<T>();
  int64_t d = 0;
  for (; d + 2 * kLanes <= D; d += 2 * kLanes) {
    Vec a, b;
    std::memcpy(&a, x + d, sizeof a);
    std::memcpy(&b, x + d + kLanes, sizeof b);
    m0 = m0 < a ? a : m0;
    m1 = m1 < b ? b : m1;
  }
  m0 = m0 < m1 ? m1 : m0;
  T m = math::lowest<T>();
  for (int k = 0; k < kLanes; ++k) m = m < m0[k] ? m0[k] : m;
  for (; d < D; ++d) m = m < x[d] ? x[d] : m;
  return m;
}

// The sum of y[0, D) in double, in two registers of double lanes (vaddpd's latency does not
// bound it).
template <class T>
double row_sum_double(const T* y, int64_t D) {
  using In = typename Simd<T>::narrow;
  using Acc = typename Simd<double>::vec;
  constexpr int kLanes = kVecBytes / 8;  // doubles in a register
  Acc s0 = {}, s1 = {};
  int64_t d = 0;
  for (; d + 2 * kLanes <= D; d += 2 * kLanes) {
    In a, b;
    std::memcpy(&a, y + d, sizeof a);
    std::memcpy(&b, y + d + kLanes, sizeof b);
    s0 += __builtin_convertvector(a, Acc);
    s1 += __builtin_convertvector(b, Acc);
  }
  s0 += s1;
  double sum = 0;
  for (int k = 0; k < kLanes; ++k) sum += s0[k];
  for (; d < D; ++d) sum += static_cast<double>(y[d]);
  return sum;
}

// A contiguous row (inner == 1), in separate passes that each vectorise: the max, exp(x - max)
// into y, the sum in double, then the scaling.
template <class T>
void softmax_row(const T* x, T* y, int64_t D, bool log) {
  const T m = row_max_ignoring_nan(x, D);
  int64_t d = 0;
  for (d = 0; d < D; ++d) y[d] = math::exp_nonpositive(x[d] - m);
  const double sum = row_sum_double(y, D);
  if (log) {
    const T lse = m + static_cast<T>(std::log(sum));
    for (d = 0; d < D; ++d) y[d] = x[d] - lse;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
    for (d = 0; d < D; ++d) y[d] *= inv;
  }
}

}  // namespace

void softmax_kernel_cpu(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log) {
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(D, 1));
  dispatch_floating(x.dtype(), "softmax", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    if (inner == 1) {
      parallel_for(outer, [&](int64_t r) { softmax_row(px + r * D, py + r * D, D, log); }, grain);
    } else {
      parallel_for(outer * inner, SoftmaxColumnKernel<T, double>{px, py, D, inner, log}, grain);
    }
  });
}

void softmax_backward_kernel_cpu(const Tensor& gx, const Tensor& g, const Tensor& y, int64_t outer, int64_t D,
                                 int64_t inner, bool log) {
  dispatch_floating(y.dtype(), "softmax_backward", [&]<class T>() {
    parallel_for(outer * inner,
                 SoftmaxBackwardColumnKernel<T, double>{g.data<T>(), y.data<T>(), gx.data<T>(), D, inner, log},
                 std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(D, 1)));
  });
}

void softmax_kernel(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner, bool log) {
  if (y.numel() == 0) return;
  if (y.is_cuda()) TS_CUDA_CALL(softmax_kernel_cuda(y, x, outer, D, inner, log));
  else softmax_kernel_cpu(y, x, outer, D, inner, log);
}

void softmax_backward_kernel(const Tensor& gx, const Tensor& g, const Tensor& y, int64_t outer, int64_t D,
                             int64_t inner, bool log) {
  if (gx.numel() == 0) return;
  if (gx.is_cuda()) TS_CUDA_CALL(softmax_backward_kernel_cuda(gx, g, y, outer, D, inner, log));
  else softmax_backward_kernel_cpu(gx, g, y, outer, D, inner, log);
}

}  // namespace tessera

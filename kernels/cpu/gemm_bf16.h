// bfloat16 GEMM for the CPU's bfloat16 convolutions and matrix products: C (float32) = op(A) op(B),
// A and B bfloat16, products and sums in float32. On a CPU with AVX512-BF16 it runs a micro-kernel
// of tessera's own on vdpbf16ps (two bfloat16 products added to a float32 lane per instruction,
// twice the multiplies of a float32 FMA); Debian's OpenBLAS 0.3.21 has no sbgemm. Elsewhere it
// widens the operands to float32 and calls OpenBLAS's sgemm (same numbers up to summation order).
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "core/half.h"
#include "core/parallel.h"
#include "kernels/cpu/blas.h"
#include "kernels/elementwise.h"

namespace tessera::cpu {

// What this CPU and its operating system let tessera execute, from CPUID and XGETBV (cached):
// AVX512-BF16 with AVX512F/BW/VL, and AMX (TILE + BF16, whose tile state Linux grants on request).
bool has_avx512_bf16();
bool has_amx_bf16();

// C[M, N] = op(A)[M, K] op(B)[K, N] (+ C if accumulate), all row-major: op(A) is A (lda >= K) or,
// with trans_a, the transpose of the stored [K, M] matrix (lda >= M); the same for B. As OpenBLAS:
// on every thread of parallel_for (bands of C's columns, or of its rows when C is narrow) when
// called outside a parallel region, on the calling thread inside one.
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const bfloat16* A, int64_t lda, const bfloat16* B,
               int64_t ldb, bool accumulate, float* C, int64_t ldc);

// The CPU kernels' one GEMM over their storage types, into opmath_t<T>: OpenBLAS for float32 and
// float64, gemm_bf16 (float32 result) for bfloat16.
template <class T>
void gemm_opmath(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                 bool accumulate, opmath_t<T>* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    gemm_bf16(trans_a, trans_b, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
  } else {
    blas::gemm<T>(trans_a, trans_b, M, N, K, T(1), A, lda, B, ldb, accumulate ? T(1) : T(0), C, ldc);
  }
}

// dst[i] = dst[i] + src[i] (accumulate) or src[i], rounded to T: a bfloat16 result from its
// float32 sums.
template <class T>
void store_rounded(T* dst, const opmath_t<T>* src, int64_t n, bool accumulate) {
  if (accumulate) parallel_for(n, [=](int64_t i) { dst[i] = T(opmath_t<T>(dst[i]) + src[i]); });
  else parallel_for(n, [=](int64_t i) { dst[i] = T(src[i]); });
}

// One row of a convolution's epilogue: y[i] = act(z[i] * s + b) (s = 1 when !scaled), plus y[i]
// when accumulating, rounded once to T. z may be y itself (float32/float64 results in place).
template <class T>
void epilogue_row(const opmath_t<T>* z, T* y, int64_t n, opmath_t<T> s, opmath_t<T> b, bool scaled, bool relu,
                  bool accumulate) {
  using F = opmath_t<T>;
  const ReluF<F> f;
  const auto each = [&](auto op) {
    if (accumulate)
      for (int64_t i = 0; i < n; ++i) y[i] = T(F(y[i]) + op(z[i]));
    else
      for (int64_t i = 0; i < n; ++i) y[i] = T(op(z[i]));
  };
  if (scaled) {
    if (relu) each([&](F t) { return f(t * s + b); });
    else each([&](F t) { return t * s + b; });
  } else if (relu) {
    each([&](F t) { return f(t + b); });
  } else {
    each([&](F t) { return t + b; });
  }
}

// Calls f.template operator()<T>() for the storage types gemm_opmath takes (float32, float64,
// bfloat16); an Error naming op for any other.
template <class F>
void dispatch_gemm_types(DType d, const char* op, F&& f) {
  if (d == DType::BFloat16) f.template operator()<bfloat16>();
  else dispatch_floating(d, op, f);
}

// Which kernel gemm_bf16 runs here: "avx512_bf16" or "float32 (OpenBLAS sgemm)".
const char* gemm_bf16_kernel_name();

}  // namespace tessera::cpu

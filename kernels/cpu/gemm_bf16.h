// bfloat16 GEMM for the CPU's bfloat16 convolutions and matrix products: C (float32) = op(A) op(B),
// A and B bfloat16, products and sums in float32. On a CPU with AVX512-BF16 it runs a micro-kernel
// of tessera's own on vdpbf16ps (two bfloat16 products added to a float32 lane per instruction,
// twice the multiplies of a float32 FMA); Debian's OpenBLAS 0.3.21 has no sbgemm. Elsewhere it
// widens the operands to float32 and calls OpenBLAS's sgemm (same numbers up to summation order).
#pragma once

#include <cstdint>

#include "core/half.h"

namespace tessera::cpu {

// What this CPU and its operating system let tessera execute, from CPUID and XGETBV (cached):
// AVX512-BF16 with AVX512F/BW/VL, and AMX (TILE + BF16, whose tile state Linux grants on request).
bool has_avx512_bf16();
bool has_amx_bf16();

// C[M, N] = op(A)[M, K] op(B)[K, N] (+ C if accumulate), all row-major: op(A) is A (lda >= K) or,
// with trans_a, the transpose of the stored [K, M] matrix (lda >= M); the same for B. One thread
// (callers run it inside their own parallel loops).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const bfloat16* A, int64_t lda, const bfloat16* B,
               int64_t ldb, bool accumulate, float* C, int64_t ldc);

// The same on every thread of parallel_for: each takes a band of C's columns (or of its rows when
// C is narrow).
void gemm_bf16_parallel(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const bfloat16* A, int64_t lda,
                        const bfloat16* B, int64_t ldb, bool accumulate, float* C, int64_t ldc);

// Which kernel gemm_bf16 runs here: "avx512_bf16" or "float32 (OpenBLAS sgemm)".
const char* gemm_bf16_kernel_name();

}  // namespace tessera::cpu

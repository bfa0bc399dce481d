// bfloat16 GEMM (see gemm_bf16.h). The AVX512-BF16 path is the usual three-level blocking
// (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication", 2008): a block of B
// (KC pairs of k x NC columns) packed once, blocks of A (MC rows) packed against it, and an
// 8 x 48 register tile of C accumulated over the block's k by vdpbf16ps.
//
// vdpbf16ps multiplies pairs: lane j of the result gains a[2j] b[2j] + a[2j+1] b[2j+1]. So both
// operands are packed by pairs of k: A's panel holds, for each pair p, MR 32-bit words (rows r's
// values at k = 2p and 2p + 1), one broadcast per row; B's panel holds, for each p, NR such words
// (columns n), three 16-lane vectors. An odd K gets a zero partner. The products are exact in
// float32 (8-bit mantissas) and the pair is added to the lane with float32 rounding.
#include "kernels/cpu/gemm_bf16.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "kernels/cpu/blas.h"

namespace tessera::cpu {

namespace {

void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
  __asm__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

bool detect_amx_bf16() {
  unsigned r[4];
  cpuid(0, 0, r);
  if (r[0] < 7) return false;
  cpuid(1, 0, r);
  if (!(r[2] & (1u << 27))) return false;  // OSXSAVE: without it XGETBV faults
  cpuid(7, 0, r);
  const bool tile = r[3] & (1u << 24), bf16 = r[3] & (1u << 22);
  if (!tile || !bf16) return false;
  unsigned eax = 0, edx = 0;  // XCR0 bits 17 and 18: XTILECFG and XTILEDATA
  __asm__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (eax & (3u << 17)) == (3u << 17);
}

constexpr int MR = 8;     // rows of C per register tile
constexpr int NR = 48;    // columns of C per register tile: three 16-lane vectors
constexpr int64_t KC = 128;  // pairs of k per block: a B panel (KC x NR words) is 24 KiB, in L1
constexpr int64_t MC = 96;   // rows per packed A block (48 KiB, in L2)
constexpr int64_t NC = 768;  // columns per packed B block (384 KiB, in L2/L3)

// Packs W-wide panels: for pairs [p0, p0 + kp) of k and indices idx0 + c (rows of op(A), columns of
// op(B)), c < W, dst[p * W + c] holds the values at k = 2 (p0 + p) and k + 1 as one word; indices
// from `valid` on and the partner of an odd K's last value are zero. The stored matrix has k
// contiguous (A untransposed, B transposed: a word is one 32-bit load) or k strided by ld (a word
// joins two rows).
void pack_panel(const uint16_t* base, int64_t ld, bool k_contiguous, int64_t idx0, int64_t valid, int W, int64_t K, int64_t p0,
                int64_t kp, uint32_t* dst) {
  const int64_t whole = std::clamp<int64_t>(K / 2 - p0, 0, kp);  // pairs with both values inside K
  if (k_contiguous) {
    for (int64_t c = 0; c < valid; ++c) {
      const uint16_t* row = base + (idx0 + c) * ld + 2 * p0;
      for (int64_t p = 0; p < whole; ++p) std::memcpy(dst + p * W + c, row + 2 * p, 4);
      if (whole < kp) dst[whole * W + c] = row[2 * whole];
    }
  } else {
    for (int64_t p = 0; p < kp; ++p) {
      const uint16_t* r0 = base + 2 * (p0 + p) * ld + idx0;
      uint32_t* d = dst + p * W;
      if (p < whole) {
        const uint16_t* r1 = r0 + ld;
        for (int64_t c = 0; c < valid; ++c) d[c] = uint32_t(r0[c]) | (uint32_t(r1[c]) << 16);
      } else {
        for (int64_t c = 0; c < valid; ++c) d[c] = r0[c];
      }
    }
  }
  if (valid < W)
    for (int64_t p = 0; p < kp; ++p) std::fill(dst + p * W + valid, dst + (p + 1) * W, 0u);
}

// The element (i, k) of op(X) for X stored row-major with leading dimension ld (the fallback's
// reads), and the packing of its panels.
struct Operand {
  const uint16_t* p;
  int64_t ld;
  bool trans;
  uint16_t at(int64_t i, int64_t k) const { return trans ? p[k * ld + i] : p[i * ld + k]; }
};

// A's rows [i0, i0 + mc) into MR-row panels (panel q at out + q * kp * MR).
void pack_a(const Operand& a, int64_t M, int64_t K, int64_t i0, int64_t mc, int64_t p0, int64_t kp, uint32_t* out) {
  for (int64_t q = 0; q < (mc + MR - 1) / MR; ++q) {
    const int64_t first = i0 + q * MR, valid = std::min<int64_t>(MR, std::min(M, i0 + mc) - first);
    pack_panel(a.p, a.ld, !a.trans, first, valid, MR, K, p0, kp, out + q * kp * MR);
  }
}

// op(B)'s columns [j0, j0 + nc) into NR-column panels (panel q at out + q * kp * NR).
void pack_b(const Operand& b, int64_t N, int64_t K, int64_t j0, int64_t nc, int64_t p0, int64_t kp, uint32_t* out) {
  for (int64_t q = 0; q < (nc + NR - 1) / NR; ++q) {
    const int64_t first = j0 + q * NR, valid = std::min<int64_t>(NR, std::min(N, j0 + nc) - first);
    pack_panel(b.p, b.ld, b.trans, first, valid, NR, K, p0, kp, out + q * kp * NR);
  }
}

// C[0..m)[0..n) (+)= the MR x NR tile of panel a (kp x MR words) times panel b (kp x NR words).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void tile_8x48(int64_t kp, const uint32_t* a, const uint32_t* b,
                                                                               float* c, int64_t ldc, int m, int n, bool load) {
  __m512 acc[MR][3];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < 3; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16),
                   b2 = (__m512bh)_mm512_loadu_si512(b + 32);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512bh ar = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
      acc[r][2] = _mm512_dpbf16_ps(acc[r][2], ar, b2);
    }
    a += MR;
    b += NR;
  }
#pragma GCC unroll 3
  for (int v = 0; v < 3; ++v) {
    const int lanes = std::clamp(n - 16 * v, 0, 16);
    if (lanes == 0) break;
    const __mmask16 mask = static_cast<__mmask16>((1u << lanes) - 1u);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      if (r >= m) break;
      float* dst = c + r * ldc + 16 * v;
      __m512 x = acc[r][v];
      if (load) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, dst));
      _mm512_mask_storeu_ps(dst, mask, x);
    }
  }
}

void gemm_avx512(const Operand& a, const Operand& b, int64_t M, int64_t N, int64_t K, bool accumulate, float* C, int64_t ldc) {
  const int64_t pairs = (K + 1) / 2;
  thread_local std::vector<uint32_t> apack, bpack;
  bpack.resize(static_cast<size_t>(((NC + NR - 1) / NR) * NR * KC));
  apack.resize(static_cast<size_t>(((MC + MR - 1) / MR) * MR * KC));
  for (int64_t j0 = 0; j0 < N; j0 += NC) {
    const int64_t nc = std::min(NC, N - j0);
    for (int64_t p0 = 0; p0 < pairs; p0 += KC) {
      const int64_t kp = std::min(KC, pairs - p0);
      const bool load = accumulate || p0 > 0;
      pack_b(b, N, K, j0, nc, p0, kp, bpack.data());
      for (int64_t i0 = 0; i0 < M; i0 += MC) {
        const int64_t mc = std::min(MC, M - i0);
        pack_a(a, M, K, i0, mc, p0, kp, apack.data());
        for (int64_t jq = 0; jq < nc; jq += NR) {
          const uint32_t* bp = bpack.data() + (jq / NR) * kp * NR;
          const int n = static_cast<int>(std::min<int64_t>(NR, nc - jq));
          for (int64_t iq = 0; iq < mc; iq += MR) {
            const int m = static_cast<int>(std::min<int64_t>(MR, mc - iq));
            tile_8x48(kp, apack.data() + (iq / MR) * kp * MR, bp, C + (i0 + iq) * ldc + j0 + jq, ldc, m, n, load);
          }
        }
      }
    }
  }
}

// C = A B^T with both operands stored k-contiguous (A untransposed, B transposed: the weight
// gradient's dM V^T, im2col's grad_out col^T, a linear layer's x W^T) and few rows or columns: a
// tile of RM x RN dot products read straight from the rows, 32 values (16 pairs) per vdpbf16ps,
// reduced across the lanes once per k-block. No packing (the packed kernel's copy is a transpose
// of 32-bit words here, as expensive as the products when M or N is small) and no padding of N to
// 48 columns.
constexpr int64_t kDotKB = 2048;  // k per block: the B rows (at most 32, see use_dot) stay in L2

// GCC 12's shuffle intrinsics start from an "undefined" vector, which -Wuninitialized reports once
// inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <int RM, int RN>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void dot_tile(const uint16_t* a, int64_t lda, const uint16_t* b,
                                                                               int64_t ldb, int64_t kc, float* c, int64_t ldc,
                                                                               bool load) {
  __m512 acc[RM][RN];
  for (int r = 0; r < RM; ++r)
    for (int j = 0; j < RN; ++j) acc[r][j] = _mm512_setzero_ps();
  const auto step = [&](int64_t k, __mmask32 mask) {
    __m512bh av[RM], bv[RN];
    for (int r = 0; r < RM; ++r) av[r] = (__m512bh)_mm512_maskz_loadu_epi16(mask, a + r * lda + k);
    for (int j = 0; j < RN; ++j) bv[j] = (__m512bh)_mm512_maskz_loadu_epi16(mask, b + j * ldb + k);
    for (int r = 0; r < RM; ++r)
      for (int j = 0; j < RN; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av[r], bv[j]);
  };
  int64_t k = 0;
  for (; k + 32 <= kc; k += 32) step(k, ~__mmask32(0));
  if (k < kc) step(k, static_cast<__mmask32>((uint64_t{1} << (kc - k)) - 1));  // zeros past the end add nothing
  for (int r = 0; r < RM; ++r)
    for (int j = 0; j < RN; ++j) {
      __m512 x = acc[r][j];  // the lanes' sum by halving
      x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(1, 0, 3, 2)));
      x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
      x = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));
      x = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)));
      const float sum = _mm512_cvtss_f32(x);
      c[r * ldc + j] = load ? c[r * ldc + j] + sum : sum;
    }
}

#pragma GCC diagnostic pop

using DotTile = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t, bool);

template <int RM, int... RN>
constexpr std::array<DotTile, sizeof...(RN)> dot_row() {
  return {&dot_tile<RM, RN>...};
}

// dot_tiles[m - 1][n - 1]: the m x n tile (edges of C included).
constexpr std::array<std::array<DotTile, 4>, 4> dot_tiles = {dot_row<1, 1, 2, 3, 4>(), dot_row<2, 1, 2, 3, 4>(),
                                                             dot_row<3, 1, 2, 3, 4>(), dot_row<4, 1, 2, 3, 4>()};

void gemm_dot(const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, int64_t M, int64_t N, int64_t K, bool accumulate,
              float* C, int64_t ldc) {
  for (int64_t k0 = 0; k0 < K; k0 += kDotKB) {
    const int64_t kc = std::min(kDotKB, K - k0);
    const bool load = accumulate || k0 > 0;
    for (int64_t i = 0; i < M; i += 4) {
      const int m = static_cast<int>(std::min<int64_t>(4, M - i));
      for (int64_t j = 0; j < N; j += 4) {
        const int n = static_cast<int>(std::min<int64_t>(4, N - j));
        dot_tiles[m - 1][n - 1](A + i * lda + k0, lda, B + j * ldb + k0, ldb, kc, C + i * ldc + j, ldc, load);
      }
    }
  }
}

// The dot kernel where it wins, measured on one Zen 4 core (it runs at ~135 GFLOP/s whatever the
// shape, the packed kernel at up to ~345): A B^T with a long k and C at most 16 columns wide (M x
// 16 x K: 1.2-3x faster), or at most 32 x 32 (1.6x); from 64 x 32 on the packed kernel is as fast
// or faster.
bool use_dot(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  return !trans_a && trans_b && K >= 256 && (N <= 16 || (N <= 32 && M <= 32));
}

// No AVX512-BF16: widen both operands to float32 (as op(X), contiguous) and call sgemm.
void gemm_widened(const Operand& a, const Operand& b, int64_t M, int64_t N, int64_t K, bool accumulate, float* C, int64_t ldc) {
  std::vector<float> fa(static_cast<size_t>(M * K)), fb(static_cast<size_t>(K * N));
  const auto widen = [](uint16_t v) {
    const uint32_t bits = uint32_t(v) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) fa[i * K + k] = widen(a.at(i, k));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < N; ++j) fb[k * N + j] = widen(b.at(k, j));
  blas::gemm<float>(false, false, M, N, K, 1.0f, fa.data(), K, fb.data(), N, accumulate ? 1.0f : 0.0f, C, ldc);
}

}  // namespace

bool has_avx512_bf16() {
  // The compiler's runtime test also checks that the OS saves the AVX-512 state (XCR0).
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return yes;
}

bool has_amx_bf16() {
  static const bool yes = detect_amx_bf16();
  return yes;
}

const char* gemm_bf16_kernel_name() { return has_avx512_bf16() ? "avx512_bf16" : "float32 (OpenBLAS sgemm)"; }

namespace {

void gemm_one_thread(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const bfloat16* A, int64_t lda,
                     const bfloat16* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  // op(A)(i, k) = a.at(i, k) and op(B)(k, j) = b.at(k, j).
  const Operand a{reinterpret_cast<const uint16_t*>(A), lda, trans_a};
  const Operand b{reinterpret_cast<const uint16_t*>(B), ldb, trans_b};
  if (has_avx512_bf16() && use_dot(trans_a, trans_b, M, N, K))
    gemm_dot(a.p, lda, b.p, ldb, M, N, K, accumulate, C, ldc);
  else if (has_avx512_bf16()) gemm_avx512(a, b, M, N, K, accumulate, C, ldc);
  else gemm_widened(a, b, M, N, K, accumulate, C, ldc);
}

}  // namespace

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const bfloat16* A, int64_t lda, const bfloat16* B,
               int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  const int threads = num_threads();
  if (threads == 1 || omp_in_parallel() || M * N * K < 64 * 64 * 64) {
    gemm_one_thread(trans_a, trans_b, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
    return;
  }
  if (N >= threads * NR) {  // bands of columns, whole register tiles each
    const int64_t per = (N / threads + NR - 1) / NR * NR;
    parallel_for(threads, [&](int64_t t) {
      const int64_t j0 = t * per, j1 = std::min(N, j0 + per);
      if (j0 >= j1) return;
      const bfloat16* Bj = trans_b ? B + j0 * ldb : B + j0;
      gemm_one_thread(trans_a, trans_b, M, j1 - j0, K, A, lda, Bj, ldb, accumulate, C + j0, ldc);
    }, 1);
  } else {  // bands of rows
    const int64_t per = (M / threads + MR - 1) / MR * MR;
    parallel_for(threads, [&](int64_t t) {
      const int64_t i0 = t * per, i1 = std::min(M, i0 + per);
      if (i0 >= i1) return;
      const bfloat16* Ai = trans_a ? A + i0 : A + i0 * lda;
      gemm_one_thread(trans_a, trans_b, i1 - i0, N, K, Ai, lda, B, ldb, accumulate, C + i0 * ldc, ldc);
    }, 1);
  }
}

}  // namespace tessera::cpu

// The CPU's bfloat16 GEMM (kernels/cpu/gemm_bf16.h) against float64 sums of the same bfloat16
// values: every transpose, edges of every blocking level (register tile, A and B blocks, the
// k-block and an odd k), leading dimensions wider than the matrix, accumulation, and the threaded
// split (taken outside a parallel region when more than one thread is allowed). Which kernel
// runs is checked against /proc/cpuinfo.
#include <random>

#include "kernels/cpu/gemm_bf16.h"
#include "test_helpers.h"

namespace tessera::test {
namespace {

struct Case {
  int64_t M, N, K;
};

void check(const Case& c, bool ta, bool tb, bool accumulate, bool parallel) {
  std::mt19937 gen(static_cast<unsigned>(c.M * 131 + c.N * 17 + c.K + ta * 2 + tb));
  std::normal_distribution<float> dist(0.f, 1.f);
  const int64_t pad = 3;  // every leading dimension is wider than its matrix
  const int64_t a_rows = ta ? c.K : c.M, a_cols = ta ? c.M : c.K, b_rows = tb ? c.N : c.K, b_cols = tb ? c.K : c.N;
  const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = c.N + pad;
  std::vector<bfloat16> A(static_cast<size_t>(a_rows * lda)), B(static_cast<size_t>(b_rows * ldb));
  for (auto& v : A) v = bfloat16(dist(gen));
  for (auto& v : B) v = bfloat16(dist(gen));
  std::vector<float> C(static_cast<size_t>(c.M * ldc));
  for (auto& v : C) v = dist(gen);
  const std::vector<float> C0 = C;
  const auto a = [&](int64_t i, int64_t k) { return double(float(ta ? A[k * lda + i] : A[i * lda + k])); };
  const auto b = [&](int64_t k, int64_t j) { return double(float(tb ? B[j * ldb + k] : B[k * ldb + j])); };
  {
    ScopedThreads threads(parallel ? num_threads() : 1);  // one thread, or the split over all of them
    cpu::gemm_bf16(ta, tb, c.M, c.N, c.K, A.data(), lda, B.data(), ldb, accumulate, C.data(), ldc);
  }
  int bad = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < c.N; ++j) {
      double want = accumulate ? C0[i * ldc + j] : 0.0, magnitude = std::fabs(want);
      for (int64_t k = 0; k < c.K; ++k) {
        want += a(i, k) * b(k, j);
        magnitude += std::fabs(a(i, k) * b(k, j));
      }
      // float32 sums of K + 1 terms: |error| <= (K + 1) u sum |terms| (u = 2^-24), and much less
      // in practice; a wrong or missing term is of the order of one term (~1).
      const double tol = (c.K + 2) * 6e-8 * magnitude + 1e-30;
      if (std::fabs(C[i * ldc + j] - want) > tol && ++bad <= 3)
        ADD_FAILURE() << "M N K " << c.M << " " << c.N << " " << c.K << " ta " << ta << " tb " << tb << " acc " << accumulate
                      << ": C[" << i << "][" << j << "] = " << C[i * ldc + j] << ", want " << want << " (tol " << tol << ")";
    }
    for (int64_t j = c.N; j < ldc; ++j)
      if (C[i * ldc + j] != C0[i * ldc + j] && ++bad <= 3) ADD_FAILURE() << "wrote outside the matrix at [" << i << "][" << j << "]";
  }
  EXPECT_EQ(bad, 0);
}

TEST(GemmBf16, MatchesFloat64SumsOfTheSameValues) {
  GTEST_LOG_(INFO) << "kernel: " << cpu::gemm_bf16_kernel_name();
  // 1x1x1; a partial register tile; exact tiles (8 x 48, k pairs); one past them with odd k; past
  // the A block (96 rows) and the k block (128 pairs); past the B block (768 columns).
  const Case cases[] = {{1, 1, 1}, {7, 13, 5}, {8, 48, 2}, {9, 49, 3}, {100, 130, 257}, {17, 800, 31}};
  for (const Case& c : cases)
    for (int t = 0; t < 4; ++t) check(c, t & 1, t & 2, false, false);
  check({100, 130, 257}, false, false, true, false);
  // A B^T with a long k and a narrow C takes the unpacked dot-product kernel: edges of its 4 x 4
  // tile, a k tail under 32, past its k block (2048), at most 16 columns or 32 x 32.
  for (const Case& c : {Case{13, 16, 300}, Case{5, 7, 2100}, Case{30, 31, 600}, Case{1, 1, 256}, Case{70, 9, 4111}})
    for (bool accumulate : {false, true}) check(c, false, true, accumulate, false);
  check({9, 49, 3}, true, true, true, false);
}

TEST(GemmBf16, ThreadedSplitMatchesToo) {
  check({64, 500, 96}, false, false, false, true);   // bands of columns
  check({200, 40, 96}, false, true, true, true);     // bands of rows
  check({33, 1000, 70}, true, false, false, true);
  check({40, 16, 700}, false, true, true, true);     // bands of rows, dot kernel
}

TEST(GemmBf16, RunsTheBf16InstructionsWhereTheCpuHasThem) {
  const bool want = cpuinfo_has("avx512_bf16") && cpuinfo_has("avx512bw") && cpuinfo_has("avx512vl");
  EXPECT_EQ(cpu::has_avx512_bf16(), want);
  EXPECT_EQ(std::string(cpu::gemm_bf16_kernel_name()), want ? "avx512_bf16" : "float32 (OpenBLAS sgemm)");
  EXPECT_EQ(cpu::has_amx_bf16(), cpuinfo_has("amx_tile") && cpuinfo_has("amx_bf16"));
}

}  // namespace
}  // namespace tessera::test

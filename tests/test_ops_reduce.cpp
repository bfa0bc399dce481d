// Reductions, matmul and softmax in the op table.
#include <cmath>
#include <cstdlib>
#include <limits>

#include "kernels/cpu/blas.h"
#include "kernels/matmul.h"
#include "kernels/reduce.h"
#include "op_table.h"

namespace tessera::test {
namespace {

using V = const std::vector<Tensor>&;
using H = const std::vector<Host>&;

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  // ---- sum / mean over every kind of dim set (adjacent, non-adjacent, leading, trailing, all)
  struct R {
    const char* name;
    Shape shape;
    Shape dims;
    bool keepdim;
  };
  for (const R& r : {R{"all", {3, 4}, {}, false}, R{"last", {3, 4}, {1}, false}, R{"first", {3, 4}, {0}, true},
                     R{"middle", {2, 3, 4}, {1}, false}, R{"outer_pair", {2, 3, 4}, {0, 2}, true},
                     R{"leading_pair", {2, 3, 4}, {0, 1}, false}, R{"negative_dim", {2, 3, 4}, {-1}, true}}) {
    Shape dims = r.dims;
    bool keep = r.keepdim;
    c.push_back({std::string("sum_") + r.name, {{r.shape}}, [dims, keep](V x) { return sum(x[0], dims, keep); },
                 [dims, keep](H h) { return ref::sum(h[0], dims, keep); }});
    c.push_back({std::string("mean_") + r.name, {{r.shape}}, [dims, keep](V x) { return mean(x[0], dims, keep); },
                 [dims, keep](H h) { return ref::mean(h[0], dims, keep); }});
    c.push_back({std::string("amax_") + r.name, {{r.shape}}, [dims, keep](V x) { return amax(x[0], dims, keep); },
                 [dims, keep](H h) { return ref::amax(h[0], dims, keep, true); }});
    c.push_back({std::string("amin_") + r.name, {{r.shape}}, [dims, keep](V x) { return amin(x[0], dims, keep); },
                 [dims, keep](H h) { return ref::amax(h[0], dims, keep, false); }});
    c.push_back({std::string("var_") + r.name, {{r.shape}}, [dims, keep](V x) { return var(x[0], dims, 1, keep); },
                 [dims, keep](H h) { return ref::var(h[0], dims, 1, keep); }});
  }
  c.push_back({"sum_of_transposed", {{{4, 3}}}, [](V x) { return sum(x[0].t(), {1}); },
               [](H h) { return ref::sum(h[0], {0}, false); }});
  c.push_back({"sum_0dim", {{{}}}, [](V x) { return sum(x[0]); }, [](H h) { return h[0]; }});
  c.push_back({"sum_int_gives_int64", {{{3, 5}, Kind::Int}}, [](V x) { return sum(x[0], {1}); },
               [](H h) { return ref::sum(h[0], {1}, false); }, false});
  c.push_back({"sum_bool_counts", {{{3, 5}, Kind::Bool}}, [](V x) { return sum(x[0]); },
               [](H h) { return ref::sum(h[0], {}, false); }, false});
  c.push_back({"var_correction0", {{{3, 4}}}, [](V x) { return var(x[0], {1}, 0); },
               [](H h) { return ref::var(h[0], {1}, 0, false); }});
  c.push_back({"amax_ties_share_gradient", {{{3, 4}, Kind::Ties}}, [](V x) { return amax(x[0], {1}); },
               [](H h) { return ref::amax(h[0], {1}, false, true); }, false});
  // Long rows and wide columns: the CPU's split-row and column-tile paths (and CUDA's split grids).
  c.push_back({"sum_long_row", {{{2, 70001}}}, [](V x) { return sum(x[0], {1}); },
               [](H h) { return ref::sum(h[0], {1}, false); }, false, 1e-4});
  c.push_back({"sum_wide_columns", {{{600, 300}}}, [](V x) { return sum(x[0], {0}); },
               [](H h) { return ref::sum(h[0], {0}, false); }, false, 1e-4});
  c.push_back({"amax_long_row", {{{3, 50000}}}, [](V x) { return amax(x[0], {1}); },
               [](H h) { return ref::amax(h[0], {1}, false, true); }, false});
  c.push_back({"mean_all_large", {{{1000, 500}}}, [](V x) { return mean(x[0]); },
               [](H h) { return ref::mean(h[0], {}, false); }, false, 1e-4});
  // ---- max/min with indices, argmax/argmin
  c.push_back({"max_dim_values", {{{3, 5}}}, [](V x) { return max(x[0], 1).first; },
               [](H h) { return ref::amax(h[0], {1}, false, true); }});
  c.push_back({"max_dim_indices", {{{3, 5}}}, [](V x) { return max(x[0], 1).second; },
               [](H h) { return ref::argext(h[0], 1, false, true); }, false});
  c.push_back({"min_dim0_keepdim_values", {{{4, 3}}}, [](V x) { return min(x[0], 0, true).first; },
               [](H h) { return ref::amax(h[0], {0}, true, false); }});
  c.push_back({"min_dim0_keepdim_indices", {{{4, 3}}}, [](V x) { return min(x[0], 0, true).second; },
               [](H h) { return ref::argext(h[0], 0, true, false); }, false});
  c.push_back({"argmax_all", {{{3, 5}}}, [](V x) { return argmax(x[0]); }, [](H h) { return ref::argext(h[0], std::nullopt, false, true); }, false});
  c.push_back({"argmin_all", {{{3, 5}}}, [](V x) { return argmin(x[0]); }, [](H h) { return ref::argext(h[0], std::nullopt, false, false); }, false});
  c.push_back({"argmax_dim_ties_first", {{{4, 6}, Kind::Ties}}, [](V x) { return argmax(x[0], 1); },
               [](H h) { return ref::argext(h[0], 1, false, true); }, false});
  c.push_back({"argmin_dim_keepdim", {{{2, 3, 4}}}, [](V x) { return argmin(x[0], 1, true); },
               [](H h) { return ref::argext(h[0], 1, true, false); }, false});
  c.push_back({"argmax_long_row", {{{2, 40000}}}, [](V x) { return argmax(x[0], 1); },
               [](H h) { return ref::argext(h[0], 1, false, true); }, false});
  c.push_back({"sum_to", {{{2, 3, 4}}}, [](V x) { return sum_to(x[0], {3, 1}); },
               [](H h) {
                 Host s = ref::sum(h[0], {0, 2}, true);
                 s.shape = {3, 1};
                 return s;
               }});
  // ---- matmul
  c.push_back({"matmul_2d", {{{3, 4}}, {{4, 5}}}, [](V x) { return matmul(x[0], x[1]); }, [](H h) { return ref::matmul(h[0], h[1]); }});
  c.push_back({"matmul_transposed_operands", {{{4, 3}}, {{5, 4}}}, [](V x) { return matmul(x[0].t(), x[1].t()); },
               [](H h) {
                 Host at = host_zeros({3, 4}), bt = host_zeros({4, 5});
                 for (int64_t i = 0; i < 4; ++i)
                   for (int64_t j = 0; j < 3; ++j) at.at({j, i}) = h[0].at({i, j});
                 for (int64_t i = 0; i < 5; ++i)
                   for (int64_t j = 0; j < 4; ++j) bt.at({j, i}) = h[1].at({i, j});
                 return ref::matmul(at, bt);
               }});
  c.push_back({"matmul_batch_broadcast", {{{2, 1, 3, 4}}, {{3, 4, 2}}}, [](V x) { return matmul(x[0], x[1]); },
               [](H h) { return ref::matmul(h[0], h[1]); }});
  c.push_back({"matmul_matrix_vector", {{{3, 4}}, {{4}}}, [](V x) { return matmul(x[0], x[1]); },
               [](H h) {
                 Host b = h[1];
                 b.shape = {4, 1};
                 Host r = ref::matmul(h[0], b);
                 r.shape = {3};
                 return r;
               }});
  c.push_back({"matmul_vector_matrix", {{{4}}, {{2, 4, 3}}}, [](V x) { return matmul(x[0], x[1]); },
               [](H h) {
                 Host a = h[0];
                 a.shape = {1, 4};
                 Host r = ref::matmul(a, h[1]);
                 r.shape = {2, 3};
                 return r;
               }});
  c.push_back({"matmul_dot", {{{5}}, {{5}}}, [](V x) { return matmul(x[0], x[1]); },
               [](H h) {
                 double s = 0;
                 for (int64_t i = 0; i < 5; ++i) s += h[0].v[i] * h[1].v[i];
                 return Host{{}, {s}};
               }});
  c.push_back({"bmm", {{{2, 3, 4}}, {{2, 4, 5}}}, [](V x) { return bmm(x[0], x[1]); }, [](H h) { return ref::matmul(h[0], h[1]); }});
  c.push_back({"mm_large", {{{70, 130}}, {{130, 90}}}, [](V x) { return mm(x[0], x[1]); }, [](H h) { return ref::matmul(h[0], h[1]); },
               false, 1e-4});
  c.push_back({"bmm_many_small", {{{16, 5, 6}}, {{16, 6, 7}}}, [](V x) { return bmm(x[0], x[1]); },
               [](H h) { return ref::matmul(h[0], h[1]); }, false});
  // ---- softmax
  c.push_back({"softmax_last", {{{3, 5}}}, [](V x) { return softmax(x[0], -1); }, [](H h) { return ref::softmax(h[0], -1, false); }});
  c.push_back({"softmax_first", {{{4, 3}}}, [](V x) { return softmax(x[0], 0); }, [](H h) { return ref::softmax(h[0], 0, false); }});
  c.push_back({"softmax_middle", {{{2, 3, 4}}}, [](V x) { return softmax(x[0], 1); }, [](H h) { return ref::softmax(h[0], 1, false); }});
  c.push_back({"log_softmax_last", {{{3, 5}}}, [](V x) { return log_softmax(x[0], -1); }, [](H h) { return ref::softmax(h[0], -1, true); }});
  c.push_back({"log_softmax_middle", {{{2, 3, 4}}}, [](V x) { return log_softmax(x[0], 1); }, [](H h) { return ref::softmax(h[0], 1, true); }});
  c.push_back({"softmax_large_logits", {{{2, 4}}}, [](V x) { return softmax(mul(x[0], 1000.0), 1); },
               [](H h) { return ref::softmax(ref::map(h[0], [](double v) { return v * 1000.0; }), 1, false); }, false});
  c.push_back({"softmax_long_rows", {{{3, 3000}}}, [](V x) { return softmax(x[0], 1); }, [](H h) { return ref::softmax(h[0], 1, false); }, false});
  // The cases that take bfloat16 and float16 (the others must refuse them: OpHalfTest): the
  // reductions, products, softmax; not norms or sorting yet.
  take_halves_by_prefix(c, {"sum_", "mean_", "amax_", "amin_", "argmax_", "argmin_", "max_dim", "min_dim", "var_", "matmul",
                            "mm_", "bmm", "softmax", "log_softmax"});
  return c;
}

TS_INSTANTIATE_OP_TABLE(ReduceLinalg, cases());

TEST(ReduceErrors, BadDimsAndEmptyInputs) {
  Tensor x = zeros({2, 3});
  EXPECT_THROW(sum(x, {2}), Error);
  EXPECT_THROW(sum(x, {0, 0}), Error);
  EXPECT_THROW(amax(zeros({0, 3}), {0}), Error);
  EXPECT_THROW(argmax(zeros({0})), Error);
  EXPECT_THROW(mean(zeros({3}, kInt64)), Error);
  EXPECT_THROW(var(x, {}, -1), Error);
  EXPECT_THROW(sum_to(x, {3, 3}), Error);
  // An empty reduction is the identity (sum) or NaN (mean), as PyTorch.
  EXPECT_EQ(sum(zeros({0, 3}), {0}).to_vector<float>(), std::vector<float>(3, 0.f));
  EXPECT_TRUE(std::isnan(mean(zeros({0})).item<float>()));
}

TEST(MatmulErrors, ShapesDtypesRanks) {
  EXPECT_THROW(matmul(zeros({2, 3}), zeros({4, 2})), Error);
  EXPECT_THROW(matmul(zeros({2, 3}), zeros({3, 2}, kFloat64)), Error);
  EXPECT_THROW(matmul(zeros({2, 3}, kInt64), zeros({3, 2}, kInt64)), Error);
  EXPECT_THROW(matmul(zeros({}), zeros({3})), Error);
  EXPECT_THROW(mm(zeros({2, 3, 4}), zeros({4, 2})), Error);
  EXPECT_THROW(bmm(zeros({2, 3, 4}), zeros({3, 4, 5})), Error);
  EXPECT_THROW(matmul(zeros({2, 2, 3}), zeros({3, 3, 2})), Error);  // batch 2 vs 3
  EXPECT_THROW(softmax(zeros({3}, kInt64), 0), Error);
  EXPECT_THROW(softmax(zeros({3}), 1), Error);
  // K = 0 gives zeros.
  EXPECT_EQ(matmul(zeros({2, 0}), zeros({0, 3})).to_vector<float>(), std::vector<float>(6, 0.f));
}

// OpenBLAS runs the kernels this CPU's vector units call for, chosen by tessera when it loads the
// library (kernels/cpu/blas.cpp), and the environment is as the user left it. The expectation is
// read from /proc/cpuinfo, not from tessera's own CPUID test.
TEST(CpuBlas, LoadsTheKernelsThisCpuCallsFor) {
  const auto has = [](const char* f) { return cpuinfo_has(f); };
  const std::string want = has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl") ? "SkylakeX"
                           : has("avx2") && has("fma")                                                 ? "Haswell"
                                                                                                        : "";
  EXPECT_EQ(blas::best_coretype(), want);
  const char* before = std::getenv("OPENBLAS_CORETYPE");
  const std::string user = before ? before : "";
  const std::string info = cpu_blas_info();  // loads OpenBLAS if no product has yet
  const char* after = std::getenv("OPENBLAS_CORETYPE");
  EXPECT_EQ(after ? std::string(after) : std::string("(unset)"), before ? user : std::string("(unset)")) << "the environment changed";
  const std::string core = blas::openblas().corename();
  EXPECT_NE(info.find("OpenBLAS " + core + " kernels"), std::string::npos) << info;
  if (before) {
    GTEST_LOG_(INFO) << "OPENBLAS_CORETYPE=" << user << " is set: the user's choice, not checked (" << info << ")";
    return;
  }
  if (want == "SkylakeX") {
    EXPECT_TRUE(core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids") << info;
  } else if (want == "Haswell") {
    EXPECT_TRUE(core == "Haswell" || core == "Zen") << info;
  }
  // A product through the loaded library equals float64 loops.
  const int64_t M = 37, K = 53, N = 29;
  Tensor a = randn({M, K}, kFloat32), b = randn({K, N}, kFloat32);
  const Host ha = host(a), hb = host(b);
  Host want_c = host_zeros({M, N});
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k) want_c.v[i * N + j] += ha.v[i * K + k] * hb.v[k * N + j];
  EXPECT_TRUE(close(matmul(a, b), want_c, 1e-4, 1e-5));
}

}  // namespace
}  // namespace tessera::test

namespace tessera::test {
namespace {

TEST(Softmax, MaskedEntriesGiveExactZerosAndAFullyMaskedRowGivesNan) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = from_vector<float>({0.f, -inf, 1.f, -inf, -inf, -inf}, {2, 3});
  std::vector<float> y = softmax(x, 1).to_vector<float>();
  EXPECT_EQ(y[1], 0.f);
  EXPECT_NEAR(y[0], 1 / (1 + std::exp(1.0)), 1e-7);
  EXPECT_TRUE(std::isnan(y[3]) && std::isnan(y[4]) && std::isnan(y[5]));  // as PyTorch
  std::vector<float> ly = log_softmax(x, 1).to_vector<float>();
  EXPECT_EQ(ly[1], -inf);
}

// The vectorised row passes (kernels/cpu/softmax.cpp: the max in vector lanes without NaNs, the sum
// in double lanes) against float64 loops, on rows whose lengths are not multiples of the lanes,
// with the maximum in the tail, with +inf, NaN and -inf entries.
TEST(Softmax, VectorisedRowsEqualFloat64LoopsIncludingSpecialValues) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t D : {1, 15, 16, 17, 33, 1000, 1031}) {
    const int64_t rows = 6;
    Tensor x = mul(randn({rows, D}), 4.0);
    std::vector<float> v = x.to_vector<float>();
    v[static_cast<size_t>(D - 1)] = 30.f;                           // row 0: the max is in the tail
    v[static_cast<size_t>(D + D / 2)] = static_cast<float>(inf);    // row 1: +inf
    v[static_cast<size_t>(2 * D + D / 3)] = static_cast<float>(nan); // row 2: a NaN
    for (int64_t d = 0; d < D; d += 2) v[static_cast<size_t>(3 * D + d)] = -static_cast<float>(inf);  // row 3: half -inf
    x = from_vector<float>(v, {rows, D});
    for (bool log : {false, true}) {
      const std::vector<float> got = (log ? log_softmax(x, 1) : softmax(x, 1)).to_vector<float>();
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = &v[static_cast<size_t>(r * D)];
        double m = -inf;
        bool has_nan = false;
        for (int64_t d = 0; d < D; ++d) {
          has_nan |= std::isnan(row[d]);
          m = std::max(m, static_cast<double>(row[d]));
        }
        double sum = 0;
        for (int64_t d = 0; d < D; ++d) sum += std::exp(static_cast<double>(row[d]) - m);
        for (int64_t d = 0; d < D; ++d) {
          const double want = has_nan ? nan
                              : log   ? static_cast<double>(row[d]) - m - std::log(sum)
                                      : std::exp(static_cast<double>(row[d]) - m) / sum;
          const float g = got[static_cast<size_t>(r * D + d)];
          if (std::isnan(want)) {
            EXPECT_TRUE(std::isnan(g)) << "D " << D << " row " << r << " d " << d << " log " << log;
          } else if (std::isinf(want)) {
            EXPECT_EQ(g, want) << "D " << D << " row " << r << " d " << d << " log " << log;
          } else {
            EXPECT_NEAR(g, want, 2e-6 + 2e-6 * std::fabs(want)) << "D " << D << " row " << r << " d " << d << " log " << log;
          }
        }
      }
    }
  }
}

// argmax/argmin over a long row (split over the threads, each slice in two passes: the extreme
// value, then its first position in blocks of 1024) against a plain loop: ties across block and
// slice boundaries go to the first, a NaN wins (the first NaN), -inf only rows give 0.
TEST(Reduce, ArgExtremaOfLongRowsEqualAPlainLoop) {
  const int64_t n = (int64_t{1} << 20) + 17;
  const float inf = std::numeric_limits<float>::infinity();
  auto plain = [&](const std::vector<float>& v, bool max) {
    int64_t best = 0;
    for (int64_t i = 1; i < static_cast<int64_t>(v.size()); ++i) {
      const float a = v[static_cast<size_t>(best)], b = v[static_cast<size_t>(i)];
      if (std::isnan(a)) break;
      if (std::isnan(b) || (max ? b > a : b < a)) best = i;
    }
    return best;
  };
  std::vector<float> base = randn({n}).to_vector<float>();
  for (int variant = 0; variant < 6; ++variant) {
    std::vector<float> v = base;
    if (variant == 1) v[static_cast<size_t>(n / 2 + 1023)] = v[static_cast<size_t>(n - 1)] = 9.f;  // tie: the earlier one
    if (variant == 2) v[1024] = v[1023] = 9.f, v[5] = -9.f, v[n - 3] = -9.f;                      // at a block boundary
    if (variant == 3) v[static_cast<size_t>(n - 2)] = std::numeric_limits<float>::quiet_NaN(), v[700000] = std::nanf("");
    if (variant == 4) std::fill(v.begin(), v.end(), -inf);
    if (variant == 5) v[0] = 50.f, v[static_cast<size_t>(n - 1)] = -50.f;
    const Tensor t = from_vector<float>(v);
    for (bool max : {true, false}) {
      const int64_t want = variant == 4 ? 0 : plain(v, max);
      EXPECT_EQ((max ? argmax(t) : argmin(t)).item<int64_t>(), want) << "variant " << variant << " max " << max;
      const Tensor r2 = t.reshape({1, n});
      EXPECT_EQ((max ? argmax(r2, 1) : argmin(r2, 1)).item<int64_t>(), want) << "variant " << variant << " max " << max;
    }
    // amax equals the plain maximum (NaN if any).
    float m = -inf;
    bool any_nan = false;
    for (float e : v) any_nan |= std::isnan(e), m = std::max(m, e);
    const float got = amax(t).item<float>();
    if (any_nan) EXPECT_TRUE(std::isnan(got));
    else EXPECT_EQ(got, m);
    float lo = inf;
    for (float e : v) lo = std::min(lo, e);
    const float got_min = amin(t).item<float>();
    if (any_nan) EXPECT_TRUE(std::isnan(got_min));
    else EXPECT_EQ(got_min, variant == 4 ? -inf : lo);
  }
}

// float32 sums over rows (kernels/cpu/reduce.cpp adds four values in float32, pairwise, before
// widening to double): against a float64 loop, within two float32 roundings of the magnitudes
// summed plus the result's own rounding, for lengths around the 128-value step and the 2^15-value
// slices, values of mixed magnitude and sign, and a NaN / inf anywhere.
TEST(Reduce, Float32SumsEqualAFloat64LoopWithinTwoRoundings) {
  const double eps = std::ldexp(1.0, -24);
  for (int64_t n : {int64_t{5}, int64_t{127}, int64_t{128}, int64_t{129}, int64_t{1000}, (int64_t{1} << 15) + 3,
                    (int64_t{1} << 20) + 17}) {
    std::vector<float> v = randn({n}).to_vector<float>();
    for (int64_t i = 0; i < n; i += 7) v[static_cast<size_t>(i)] *= 1000.f;   // mixed magnitudes
    for (int64_t i = 3; i < n; i += 11) v[static_cast<size_t>(i)] *= 1e-3f;
    double exact = 0, magnitude = 0;
    for (float e : v) exact += e, magnitude += std::fabs(e);
    const Tensor t = from_vector<float>(v);
    const double bound = 2 * 2 * eps * magnitude + eps * std::fabs(exact) + 1e-30;
    EXPECT_NEAR(sum(t).item<float>(), exact, bound) << "n " << n;
    EXPECT_NEAR(mean(t).item<float>(), exact / static_cast<double>(n), bound / static_cast<double>(n)) << "n " << n;
    // Rows: many rows go to the threads one row each.
    const Tensor rows = t.reshape({1, n}).expand({3, n}).contiguous();
    const std::vector<float> per_row = sum(rows, {1}).to_vector<float>();
    for (float r : per_row) EXPECT_NEAR(r, exact, bound) << "n " << n;
    for (float special : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      std::vector<float> w = v;
      w[static_cast<size_t>(n - 1 - n / 3)] = special;
      const float got = sum(from_vector<float>(w)).item<float>();
      if (std::isnan(special)) EXPECT_TRUE(std::isnan(got)) << "n " << n;
      else EXPECT_EQ(got, special) << "n " << n;
    }
  }
}


// ---- the GPU's reduction order, on the CPU. kernels/cuda/reduce.cu folds a row with the ops'
// own identity / step / combine (kernels/reduce.h) in this order: short rows (R <= 256) by one
// warp, lane l stepping r = l, l + 32, ..., then a shuffle-down tree; long rows by 256-thread
// blocks over `splits` chunks (each block: threads stride their chunk, a tree per warp, one warp
// over the eight warp results), the chunks' partials combined in order. Emulating that order
// here checks that combine (ties to the smaller index, NaN first, float sums) gives the CPU's
// answer whatever the grouping.
template <class Op>
typename Op::acc_t shuffle_tree(const Op& op, std::vector<typename Op::acc_t> lane) {
  for (int delta = 16; delta > 0; delta /= 2) {
    const auto before = lane;  // all lanes read, then all write
    for (int l = 0; l < 32; ++l) lane[l] = op.combine(before[l], l + delta < 32 ? before[l + delta] : before[l]);
  }
  return lane[0];
}

template <class Op>
typename Op::acc_t gpu_order_reduce(const Op& op, const float* row, int64_t R, int splits) {
  using Acc = typename Op::acc_t;
  if (R <= 256) {
    std::vector<Acc> lane(32, op.identity());
    for (int l = 0; l < 32; ++l)
      for (int64_t r = l; r < R; r += 32) lane[l] = op.step(lane[l], row[r], r);
    return shuffle_tree(op, lane);
  }
  const int64_t chunk = (R + splits - 1) / splits;
  Acc total = op.identity();
  for (int k = 0; k < splits; ++k) {
    std::vector<Acc> thread(256, op.identity());
    for (int t = 0; t < 256; ++t)
      for (int64_t r = k * chunk + t; r < std::min(R, (k + 1) * chunk); r += 256) thread[t] = op.step(thread[t], row[r], r);
    std::vector<Acc> warp_results(32, op.identity());
    for (int w = 0; w < 8; ++w)
      warp_results[w] = shuffle_tree(op, std::vector<Acc>(thread.begin() + 32 * w, thread.begin() + 32 * (w + 1)));
    total = op.combine(total, shuffle_tree(op, warp_results));
  }
  return total;
}

TEST(ReduceGpuOrder, CombineGivesTheCpuResultInAnyGrouping) {
  Generator g(17);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t R : {40, 256, 1000, 5000})
    for (int splits : {1, 3, 8})
      for (int trial = 0; trial < 8; ++trial) {
        const bool with_nan = trial % 2 == 1;
        // Few distinct values: many ties for the arg ops; NaNs at random places.
        std::vector<float> v = randint(-3, 4, {R}, kInt64, &g).to(kFloat32).to_vector<float>();
        if (with_nan)
          for (int64_t k : randint(0, R, {4}, kInt64, &g).to_vector<int64_t>()) v[static_cast<size_t>(k)] = nan;
        const Tensor x = from_vector<float>(v, {R});
        const std::string where = "R " + std::to_string(R) + ", splits " + std::to_string(splits) + (with_nan ? ", NaN" : "");
        float value = 0;
        int64_t index = -1;
        ArgOp<float, true> amax_op{&value, &index};
        amax_op.write(gpu_order_reduce(amax_op, v.data(), R, splits), 0);
        EXPECT_EQ(index, argmax(x).item<int64_t>()) << "argmax, " << where;
        ArgOp<float, false> amin_op{&value, &index};
        amin_op.write(gpu_order_reduce(amin_op, v.data(), R, splits), 0);
        EXPECT_EQ(index, argmin(x).item<int64_t>()) << "argmin, " << where;
        ExtremumOp<float, true> max_op{&value};
        max_op.write(gpu_order_reduce(max_op, v.data(), R, splits), 0);
        const float want = amax(x).item<float>();
        EXPECT_TRUE(value == want || (std::isnan(value) && std::isnan(want))) << "max, " << where;
        if (!with_nan) {
          std::vector<float> u = uniform({R}, -1.0, 1.0, kFloat32, &g).to_vector<float>();
          SumOp<float, float, float> sum_op{&value, 1.0};
          sum_op.write(gpu_order_reduce(sum_op, u.data(), R, splits), 0);
          const double exact = sum(from_vector<float>(u, {R}).to(kFloat64)).item<double>();
          EXPECT_NEAR(value, exact, 1e-6 * static_cast<double>(R)) << "sum, " << where;
        }
      }
}

}  // namespace
}  // namespace tessera::test

// Helpers for the tests: host copies in float64, tolerant comparison, non-contiguous twins of
// tensors, and the CUDA skip rule (skip with a reason, or fail when TESSERA_REQUIRE_CUDA=1).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tessera.h"

namespace tessera::test {

// A contiguous float64 copy of a tensor on the host: the currency of the naive references.
struct Host {
  Shape shape;
  std::vector<double> v;
  int64_t numel() const { return static_cast<int64_t>(v.size()); }
  // Flat index of a multi-index (row-major).
  int64_t offset(const Shape& idx) const {
    int64_t off = 0;
    for (size_t d = 0; d < shape.size(); ++d) off = off * shape[d] + idx[d];
    return off;
  }
  double& at(const Shape& idx) { return v[offset(idx)]; }
  double at(const Shape& idx) const { return v[offset(idx)]; }
};

inline Host host(const Tensor& t) { return Host{t.shape(), t.to_vector<double>()}; }
inline Host host_zeros(const Shape& shape) { return Host{shape, std::vector<double>(shape_numel(shape), 0.0)}; }

// The multi-index of flat position i in `shape`.
inline Shape unravel(int64_t i, const Shape& shape) {
  Shape idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = i % shape[d];
    i /= shape[d];
  }
  return idx;
}

// |a - b| <= atol + rtol * |b| everywhere, shapes equal, no NaN unless both are NaN at the spot.
inline ::testing::AssertionResult close(const Tensor& actual, const Host& expected, double atol, double rtol,
                                        bool nan_equal = false) {
  if (actual.shape() != expected.shape)
    return ::testing::AssertionFailure() << "shape " << shape_str(actual.shape()) << " != expected "
                                         << shape_str(expected.shape);
  const std::vector<double> a = actual.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = expected.v[i];
    if (nan_equal && std::isnan(x) && std::isnan(y)) continue;
    if (std::isinf(y) && x == y) continue;
    if (!(std::abs(x - y) <= atol + rtol * std::abs(y)))
      return ::testing::AssertionFailure() << "element " << i << " (" << shape_str(unravel(static_cast<int64_t>(i), expected.shape))
                                           << "): got " << x << ", expected " << y;
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult close(const Tensor& actual, const Tensor& expected, double atol, double rtol,
                                        bool nan_equal = false) {
  return close(actual, host(expected), atol, rtol, nan_equal);
}

// max over elements of |a - b| / (atol + rtol |b|), both moved to the CPU in float64: <= 1 passes;
// a shape mismatch or a NaN gives infinity.
inline double worst_ratio(const Tensor& a, const Tensor& b, double atol, double rtol) {
  if (a.shape() != b.shape()) return INFINITY;
  const std::vector<double> x = a.cpu().to_vector<double>(), y = b.cpu().to_vector<double>();
  double w = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = std::abs(x[i] - y[i]) / (atol + rtol * std::abs(y[i]));
    if (!(r == r)) return INFINITY;
    w = std::max(w, r);
  }
  return w;
}

// Relative L2 error ||a - b|| / ||b|| (infinite when b is zero and a is not).
inline double rel_l2(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.cpu().to_vector<double>(), y = b.cpu().to_vector<double>();
  double d = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d += (x[i] - y[i]) * (x[i] - y[i]);
    n += y[i] * y[i];
  }
  return n > 0 ? std::sqrt(d / n) : (d > 0 ? INFINITY : 0.0);
}

// f() throws a tessera::Error whose message contains `part`.
template <class F>
::testing::AssertionResult throws_error_with(F&& f, const std::string& part) {
  try {
    f();
  } catch (const Error& e) {
    if (e.message().find(part) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the Error does not say '" << part << "': " << e.message();
  }
  return ::testing::AssertionFailure() << "no Error (expected one saying '" << part << "')";
}
// A scratch folder of this test process: <tmp>/tessera_<tag>_<pid>, created (fresh: emptied first).
inline std::filesystem::path scratch_dir(const std::string& tag, bool fresh = false) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("tessera_" + tag + "_" + std::to_string(::getpid()));
  if (fresh) std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// An Error whose message holds every one of `parts`.
template <class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const Error& e) {
    for (const std::string& p : parts) EXPECT_NE(e.message().find(p), std::string::npos) << "the Error does not say '" << p << "': " << e.message();
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a tessera::Error: " << e.what();
    return;
  }
  ADD_FAILURE() << "no Error (expected one saying '" << (parts.empty() ? "" : parts[0]) << "')";
}
#define EXPECT_THROW_MSG(stmt, part) EXPECT_TRUE(::tessera::test::throws_error_with([&] { stmt; }, part))

// Exactly equal values (and shape).
inline ::testing::AssertionResult equal(const Tensor& actual, const Tensor& expected) {
  return close(actual, host(expected), 0.0, 0.0, true);
}

// The same values in a non-contiguous layout (a transposed copy, or a strided slice).
inline Tensor noncontiguous(const Tensor& t) {
  NoGradGuard g;
  if (t.dim() >= 2) return t.transpose(-1, -2).contiguous().transpose(-1, -2);
  if (t.dim() == 1) {
    Tensor wide = zeros({t.size(0), 2}, options(t.dtype(), t.device()));
    wide.select(1, 0).copy_(t);
    return wide.select(1, 0);
  }
  return t;
}

// Whether CUDA tests should run: true with a usable device; otherwise they skip with the reason,
// or fail when TESSERA_REQUIRE_CUDA=1 (the GPU machine's check must not silently skip).
inline bool require_cuda_env() {
  const char* v = std::getenv("TESSERA_REQUIRE_CUDA");
  return v != nullptr && std::string(v) == "1";
}

#define TS_SKIP_WITHOUT_CUDA()                                                                      \
  do {                                                                                              \
    if (!::tessera::cuda::is_available()) {                                                         \
      if (::tessera::test::require_cuda_env())                                                      \
        FAIL() << "TESSERA_REQUIRE_CUDA=1 but CUDA is unavailable: " << ::tessera::cuda::unavailable_reason(); \
      GTEST_SKIP() << "CUDA unavailable: " << ::tessera::cuda::unavailable_reason();               \
    }                                                                                               \
  } while (0)

// tests/data: TESSERA_TEST_DATA in the environment when set (a relocated bundle, see
// scripts/gpu_check.sh), else the source tree's folder compiled in.
inline std::string data_path(const std::string& rel) {
  const char* env = std::getenv("TESSERA_TEST_DATA");
  return std::string(env != nullptr && *env != '\0' ? env : TESSERA_TEST_DATA) + "/" + rel;
}

// Whether /proc/cpuinfo lists `flag` for this CPU: the tests' independent view of what the CPU
// has, never tessera's own CPUID code.
inline bool cpuinfo_has(const std::string& flag) {
  static const std::string flags = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("flags", 0) == 0) return line + " ";
    return std::string();
  }();
  return flags.find(" " + flag + " ") != std::string::npos;
}

}  // namespace tessera::test

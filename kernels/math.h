// Scalar math usable in TS_HD code: the C names (expf/exp, ...) exist on the host (math.h) and on
// the device (CUDA's math library), so one body serves both. Float and double only.
#pragma once

#include <math.h>

#include <bit>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/half.h"
#include "core/parallel.h"

namespace tessera::math {

#define TS_MATH_UNARY(name, fname, dname)                         \
  template <class T>                                              \
  TS_HD T name(T x) {                                             \
    if constexpr (std::is_same_v<T, float>) return ::fname(x);    \
    else return ::dname(static_cast<double>(x));                  \
  }
TS_MATH_UNARY(exp, expf, exp)
TS_MATH_UNARY(log, logf, log)
TS_MATH_UNARY(log2, log2f, log2)
TS_MATH_UNARY(sqrt, sqrtf, sqrt)
TS_MATH_UNARY(tanh, tanhf, tanh)
TS_MATH_UNARY(log1p, log1pf, log1p)
TS_MATH_UNARY(expm1, expm1f, expm1)
TS_MATH_UNARY(floor, floorf, floor)
TS_MATH_UNARY(ceil, ceilf, ceil)
TS_MATH_UNARY(sin, sinf, sin)
TS_MATH_UNARY(cos, cosf, cos)
#undef TS_MATH_UNARY

template <class T>
TS_HD T pow(T x, T y) {
  if constexpr (std::is_same_v<T, float>) return ::powf(x, y);
  else return ::pow(static_cast<double>(x), static_cast<double>(y));
}

template <class T>
TS_HD bool isnan(T x) {
  if constexpr (is_floating_v<T>) return static_cast<opmath_t<T>>(x) != static_cast<opmath_t<T>>(x);
  else return false;
}

template <class T>
TS_HD T abs(T x) {
  if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>) return x;
  else return x < T(0) ? -x : x;
}

// exp(x) for x <= 0 (or NaN, or -inf), in straight-line arithmetic that the host compiler
// vectorises: Cephes' expf (range reduction by n = floor(x / ln2 + 1/2), a degree-6 polynomial on
// [-ln2/2, ln2/2], scaling by 2^n), within 2 ulp of expf; below -87.3 it flushes to 0. Integer
// masks instead of float selects keep GCC's if-conversion happy. Softmax uses it after
// subtracting the row maximum. The device and double use the library exp.
template <class T>
TS_HD T exp_nonpositive(T x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  if constexpr (!std::is_same_v<T, float>) {
    return exp(x);
  } else {
    const float t = x * 1.44269504088896341f + 0.5f;
    int n = static_cast<int>(t);  // NaN/-inf give INT_MIN on x86: clamped before any arithmetic
    n = n < -126 ? -126 : n;
    n = n > 127 ? 127 : n;
    n -= static_cast<float>(n) > t ? 1 : 0;  // truncation -> floor (n >= -127)
    const float nf = static_cast<float>(n);
    const float v = x - nf * 0.693359375f + nf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * v + 1.3981999507e-3f;
    p = p * v + 8.3334519073e-3f;
    p = p * v + 4.1665795894e-2f;
    p = p * v + 1.6666665459e-1f;
    p = p * v + 5.0000001201e-1f;
    p = p * (v * v) + v + 1.0f;
    uint32_t bits = std::bit_cast<uint32_t>(p * std::bit_cast<float>(static_cast<uint32_t>(n + 127) << 23));
    bits &= 0u - static_cast<uint32_t>(n > -127);  // underflow (and -inf) -> +0
    const uint32_t magnitude = std::bit_cast<uint32_t>(x) & 0x7fffffffu;
    bits |= 0x7fc00000u & (0u - static_cast<uint32_t>(magnitude > 0x7f800000u));  // NaN stays NaN
    return std::bit_cast<float>(bits);
  }
#endif
}

// NaN-propagating minimum and maximum, as torch.minimum/maximum.
template <class T>
TS_HD T minimum(T a, T b) {
  return (b < a) | isnan(b) ? b : a;  // a NaN a: both tests fail, a is kept. One select: it vectorises.
}
template <class T>
TS_HD T maximum(T a, T b) {
  return (a < b) | isnan(b) ? b : a;
}

// ceil(a / b) for b > 0, clamped below at 0 (window ranges in pooling and resampling).
TS_HD int64_t ceil_div_nonneg(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

// The identity of max/min reductions: the lowest (highest) value the type has.
template <class T>
TS_HD T lowest() {
  static_assert(!is_half_v<T>, "take lowest<opmath_t<T>>() for the halves");
  if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<T>::infinity();
  else return std::numeric_limits<T>::lowest();
}
template <class T>
TS_HD T highest() {
  static_assert(!is_half_v<T>, "take highest<opmath_t<T>>() for the halves");
  if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::infinity();
  else return std::numeric_limits<T>::max();
}

}  // namespace tessera::math

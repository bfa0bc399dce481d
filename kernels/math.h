// Scalar math usable in TS_HD code: the C names (expf/exp, ...) exist on the host (math.h) and on
// the device (CUDA's math library), so one body serves both. Float and double only.
#pragma once

#include <math.h>

#include <cstdint>
#include <limits>
#include <type_traits>

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
  if constexpr (std::is_floating_point_v<T>) return x != x;
  else return false;
}

template <class T>
TS_HD T abs(T x) {
  if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>) return x;
  else return x < T(0) ? -x : x;
}

// NaN-propagating minimum and maximum, as torch.minimum/maximum.
template <class T>
TS_HD T minimum(T a, T b) {
  if (isnan(a)) return a;
  if (isnan(b)) return b;
  return b < a ? b : a;
}
template <class T>
TS_HD T maximum(T a, T b) {
  if (isnan(a)) return a;
  if (isnan(b)) return b;
  return a < b ? b : a;
}

// The identity of max/min reductions: the lowest (highest) value the type has.
template <class T>
TS_HD T lowest() {
  if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<T>::infinity();
  else return std::numeric_limits<T>::lowest();
}
template <class T>
TS_HD T highest() {
  if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::infinity();
  else return std::numeric_limits<T>::max();
}

}  // namespace tessera::math

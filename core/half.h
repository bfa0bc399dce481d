// The two 16-bit floating types: bfloat16 (8 exponent bits, 7 stored mantissa bits: float32's range)
// and float16 (IEEE 754 binary16: 5 exponent bits, 10 mantissa bits, largest finite 65504).
//
// They are storage types. Arithmetic converts them to float (operator float), computes in float and
// rounds once when the result is stored (the converting constructor), which is what PyTorch does
// for every elementwise op on these dtypes ("opmath"). Conversions from float round to nearest,
// ties to even; NaN stays a quiet NaN with its sign; a float16 overflow gives +-inf; a float below
// float16's smallest subnormal rounds to +-0. Other types convert through float, as in PyTorch
// (a double is rounded to float first).
//
// Written with integer operations only, so the results do not depend on the floating-point
// environment and the same code runs on the host and in CUDA kernels.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/hd.h"

namespace tessera {

namespace half_bits {

TS_HD uint32_t from_float(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

TS_HD float to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

TS_HD uint16_t bf16_from_float(float f) {
  const uint32_t u = from_float(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  const uint32_t bias = 0x7fffu + ((u >> 16) & 1u);  // ties to even
  return static_cast<uint16_t>((u + bias) >> 16);
}

TS_HD float bf16_to_float(uint16_t b) { return to_float(static_cast<uint32_t>(b) << 16); }

TS_HD uint16_t f16_from_float(float f) {
  const uint32_t u = from_float(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x03ffu));  // quiet NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 (and inf): inf
  if (a >= 0x38800000u) {  // a normal float16 (>= 2^-14)
    const uint32_t r = a + 0xc8000fffu + ((a >> 13) & 1u);  // rebias the exponent by -112, round
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  // Subnormal or zero: the value in units of 2^-24 is m * 2^(e - 126), rounded to an integer.
  const int e = static_cast<int>(a >> 23);
  if (e < 102) return static_cast<uint16_t>(sign);  // below 2^-25: rounds to zero
  const uint32_t m = (a & 0x007fffffu) | 0x00800000u;
  const int shift = 126 - e;  // 14 .. 24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal: correct
  return static_cast<uint16_t>(sign | q);
}

TS_HD float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x03ffu;
  if (e == 0x1fu) return to_float(sign | 0x7f800000u | (m << 13));
  if (e != 0) return to_float(sign | ((e + 112u) << 23) | (m << 13));
  if (m == 0) return to_float(sign);
  int p = 9;  // the leading bit of the subnormal mantissa: value m * 2^-24 = 1.x * 2^(p - 24)
  while (!(m & (1u << p))) --p;
  return to_float(sign | (static_cast<uint32_t>(p + 103) << 23) | ((m << (23 - p)) & 0x007fffffu));
}

}  // namespace half_bits

struct bfloat16 {
  uint16_t bits;
  bfloat16() = default;
  TS_HD bfloat16(float f) : bits(half_bits::bf16_from_float(f)) {}
  template <class A>
    requires(std::is_arithmetic_v<A> && !std::is_same_v<A, float>)
  TS_HD bfloat16(A v) : bfloat16(static_cast<float>(v)) {}
  TS_HD operator float() const { return half_bits::bf16_to_float(bits); }
  TS_HD static bfloat16 from_bits(uint16_t b) {
    bfloat16 r;
    r.bits = b;
    return r;
  }
};

struct float16 {
  uint16_t bits;
  float16() = default;
  TS_HD float16(float f) : bits(half_bits::f16_from_float(f)) {}
  template <class A>
    requires(std::is_arithmetic_v<A> && !std::is_same_v<A, float>)
  TS_HD float16(A v) : float16(static_cast<float>(v)) {}
  TS_HD operator float() const { return half_bits::f16_to_float(bits); }
  TS_HD static float16 from_bits(uint16_t b) {
    float16 r;
    r.bits = b;
    return r;
  }
};

template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>;

// float32, float64 and the two halves.
template <class T>
inline constexpr bool is_floating_v = std::is_floating_point_v<T> || is_half_v<T>;

// The type arithmetic on T is done in: float for the halves, T itself otherwise.
template <class T>
using opmath_t = std::conditional_t<is_half_v<T>, float, T>;

}  // namespace tessera

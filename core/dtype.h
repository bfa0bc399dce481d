// DType: the element types a Tensor can hold, their sizes, promotion, and type dispatch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/half.h"

namespace tessera {

// BFloat16 and Float16 come last so that the values of the older dtypes stay what files and the
// ranks' encodings hold.
enum class DType : uint8_t { Bool, UInt8, Int32, Int64, Float32, Float64, BFloat16, Float16 };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kInt32 = DType::Int32;
inline constexpr DType kUInt8 = DType::UInt8;
inline constexpr DType kBool = DType::Bool;
inline constexpr DType kBFloat16 = DType::BFloat16;
inline constexpr DType kFloat16 = DType::Float16;

size_t element_size(DType d);
const char* dtype_name(DType d);  // "float32", "int64", ...
inline bool is_half(DType d) { return d == DType::BFloat16 || d == DType::Float16; }
// float32, float64, bfloat16, float16 (PyTorch's is_floating_point).
inline bool is_floating(DType d) { return d == DType::Float32 || d == DType::Float64 || is_half(d); }
inline bool is_integral(DType d, bool include_bool = false) {
  return d == DType::UInt8 || d == DType::Int32 || d == DType::Int64 ||
         (include_bool && d == DType::Bool);
}

// PyTorch's promotion between two tensor dtypes: bool < integers < floating; among the floating
// types bfloat16 and float16 are below float32, and the two together give float32.
DType promote_types(DType a, DType b);

std::ostream& operator<<(std::ostream& os, DType d);

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<bfloat16>() { return DType::BFloat16; }
template <> constexpr DType dtype_of<float16>() { return DType::Float16; }

// Calls f.template operator()<T>() with T the C++ type of d. `op` names the caller in errors.
// Use: dispatch_all(d, "add", [&]<class T>() { ... });
template <class F>
decltype(auto) dispatch_all(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::Bool: return f.template operator()<bool>();
    case DType::UInt8: return f.template operator()<uint8_t>();
    case DType::Int32: return f.template operator()<int32_t>();
    case DType::Int64: return f.template operator()<int64_t>();
    case DType::Float32: return f.template operator()<float>();
    case DType::Float64: return f.template operator()<double>();
    default: break;
  }
  TS_ERROR(op, ": not supported for dtype ", dtype_name(d));
}

// Numeric types only (no bool).
template <class F>
decltype(auto) dispatch_numeric(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::UInt8: return f.template operator()<uint8_t>();
    case DType::Int32: return f.template operator()<int32_t>();
    case DType::Int64: return f.template operator()<int64_t>();
    case DType::Float32: return f.template operator()<float>();
    case DType::Float64: return f.template operator()<double>();
    default: break;
  }
  TS_ERROR(op, ": not supported for dtype ", dtype_name(d));
}

template <class F>
decltype(auto) dispatch_floating(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::Float32: return f.template operator()<float>();
    case DType::Float64: return f.template operator()<double>();
    default: break;
  }
  TS_ERROR(op, ": expected a float32 or float64 tensor, got ", dtype_name(d));
}

template <class F>
decltype(auto) dispatch_index(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::Int32: return f.template operator()<int32_t>();
    case DType::Int64: return f.template operator()<int64_t>();
    default: break;
  }
  TS_ERROR(op, ": index must be int64 or int32, got ", dtype_name(d));
}

// The same three with bfloat16 and float16 added, for the kernels written for them: storage moves
// (copy, indexing), elementwise ops (computed in opmath_t<T>) and reductions (accumulated in float
// or wider). Every other kernel keeps the dispatchers above, so that a half tensor reaching it is
// an Error naming the op and the dtype, never arithmetic done in 16 bits by accident.
template <class F>
decltype(auto) dispatch_all_with_half(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::BFloat16: return f.template operator()<bfloat16>();
    case DType::Float16: return f.template operator()<float16>();
    default: return dispatch_all(d, op, static_cast<F&&>(f));
  }
}

template <class F>
decltype(auto) dispatch_numeric_with_half(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::BFloat16: return f.template operator()<bfloat16>();
    case DType::Float16: return f.template operator()<float16>();
    default: return dispatch_numeric(d, op, static_cast<F&&>(f));
  }
}

template <class F>
decltype(auto) dispatch_floating_with_half(DType d, const char* op, F&& f) {
  switch (d) {
    case DType::BFloat16: return f.template operator()<bfloat16>();
    case DType::Float16: return f.template operator()<float16>();
    default: return dispatch_floating(d, op, static_cast<F&&>(f));
  }
}

}  // namespace tessera

// DType: the element types a Tensor can hold, their sizes, promotion, and type dispatch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace tessera {

enum class DType : uint8_t { Bool, UInt8, Int32, Int64, Float32, Float64 };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kInt32 = DType::Int32;
inline constexpr DType kUInt8 = DType::UInt8;
inline constexpr DType kBool = DType::Bool;

size_t element_size(DType d);
const char* dtype_name(DType d);  // "float32", "int64", ...
inline bool is_floating(DType d) { return d == DType::Float32 || d == DType::Float64; }
inline bool is_integral(DType d, bool include_bool = false) {
  return d == DType::UInt8 || d == DType::Int32 || d == DType::Int64 ||
         (include_bool && d == DType::Bool);
}

// NumPy/PyTorch promotion between two tensor dtypes (bool < integers < floating).
DType promote_types(DType a, DType b);

std::ostream& operator<<(std::ostream& os, DType d);

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }

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
  }
  TS_ERROR(op, ": unknown dtype");
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

}  // namespace tessera

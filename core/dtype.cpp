// DType sizes, names and promotion.
#include "core/dtype.h"

#include <ostream>

namespace tessera {

size_t element_size(DType d) {
  switch (d) {
    case DType::Bool: return 1;
    case DType::UInt8: return 1;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::BFloat16: return 2;
    case DType::Float16: return 2;
  }
  TS_ERROR("element_size: unknown dtype");
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::Bool: return "bool";
    case DType::UInt8: return "uint8";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
  }
  return "unknown";
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // The lattice: bool < uint8 < int32 < int64 < {bfloat16, float16} < float32 < float64, and
  // bfloat16 with float16 gives float32 (neither holds the other).
  if (is_half(a) && is_half(b)) return DType::Float32;
  auto rank = [](DType d) {
    switch (d) {
      case DType::Bool: return 0;
      case DType::UInt8: return 1;
      case DType::Int32: return 2;
      case DType::Int64: return 3;
      case DType::BFloat16:
      case DType::Float16: return 4;
      case DType::Float32: return 5;
      case DType::Float64: return 6;
    }
    return 0;
  };
  return rank(a) > rank(b) ? a : b;
}

std::ostream& operator<<(std::ostream& os, DType d) { return os << dtype_name(d); }

}  // namespace tessera

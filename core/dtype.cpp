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
  }
  return "unknown";
}

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // The enum is ordered along the promotion lattice for the types tessera has:
  // bool < uint8 < int32 < int64 < float32 < float64.
  return static_cast<uint8_t>(a) > static_cast<uint8_t>(b) ? a : b;
}

std::ostream& operator<<(std::ostream& os, DType d) { return os << dtype_name(d); }

}  // namespace tessera

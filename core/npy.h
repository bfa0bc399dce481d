// NumPy .npy files (format versions 1-3): float16, float32, float64, int64, int32, uint8, bool; C order,
// little-endian. Malformed files are an Error naming the file and the problem, never an over-read.
#pragma once

#include <string>

#include "core/tensor.h"

namespace tessera {

Tensor load_npy(const std::string& path);                 // a CPU tensor
Tensor parse_npy(const char* data, size_t size, const std::string& name);  // name for errors
void save_npy(const std::string& path, const Tensor& t);  // any device; written atomically

}  // namespace tessera

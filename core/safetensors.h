// safetensors files (https://github.com/huggingface/safetensors): F32, F64, F16, BF16, I64, I32, U8,
// BOOL, read and written. F16 and BF16 are widened exactly to float32 on load unless
// HalfLoad::Keep is asked for (a float32 model reads any distributed checkpoint as it is).
// A u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, the bytes.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"

namespace tessera {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;          // CPU tensors, by name
  std::map<std::string, std::string> metadata;    // the optional "__metadata__" entry
};

enum class HalfLoad { WidenToFloat32, Keep };

SafetensorsFile load_safetensors(const std::string& path, HalfLoad halves = HalfLoad::WidenToFloat32);
SafetensorsFile parse_safetensors(const char* data, size_t size, const std::string& name,
                                  HalfLoad halves = HalfLoad::WidenToFloat32);
// Tensors from any device; written atomically, names in sorted order.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace tessera

// Image files through stb: PNG, JPEG and BMP in (8-bit gray, gray+alpha, RGB, RGBA; 16-bit PNG),
// PNG out; one-page TIFFs through data/tiff.h (stacks: read_image_stack there). Truncated or corrupt files, missing files and other formats are an Error naming the
// file and the problem.
#pragma once

#include <string>

#include "core/tensor.h"

namespace tessera {

// float32 [C, H, W] in [0, 1] (16-bit PNGs divided by 65535). channels: 0 = as stored, else 1
// (gray), 3 (RGB) or 4 (RGBA), converted as stb converts.
Tensor read_image(const std::string& path, int channels = 0);
Tensor decode_image(const void* data, size_t size, const std::string& name, int channels = 0);
// A label image as int64 [H, W] holding the stored values: a one-channel PNG (1 to 16 bits; a 1-bit
// mask gives 0 and 1) or BMP, or a palette PNG, whose labels are its indices (as PIL reads them:
// PASCAL VOC's masks).
Tensor read_label_image(const std::string& path);
Tensor decode_label_image(const void* data, size_t size, const std::string& name);
// Writes a PNG atomically: uint8 [H, W] or [C, H, W] (C = 1, 2, 3 or 4) as is; float tensors are
// taken as [0, 1], clamped, scaled to 0..255 and rounded.
void write_png(const std::string& path, const Tensor& image);
// Encodes as write_png does, into memory.
std::string encode_png(const Tensor& image);

}  // namespace tessera

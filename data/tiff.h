// TIFF through libtiff: the microscopy format, in which the U-Net paper's data is distributed (the
// ISBI 2012 stacks, the Cell Tracking Challenge's 8- and 16-bit frames and instance masks).
// Read: 8-, 16- and 32-bit unsigned and 32-bit float samples, 1 to 4 per pixel (gray, gray +
// alpha, RGB, RGBA; interleaved or planar), uncompressed, LZW, Deflate or PackBits, in strips or
// tiles, every page of a multi-page stack. Written: one-channel pages, uncompressed, atomically.
// A malformed file is an Error naming it and what libtiff or the checks found wrong; the pixels a
// page's header claims are bounded by what its compressed bytes can hold.
#pragma once

#include <string>

#include "core/tensor.h"

namespace tessera {

// Whether the bytes begin as a TIFF does ("II*\0" or "MM\0*").
bool is_tiff(const void* data, size_t size);

// Every page as float32 [N, C, H, W]: 8- and 16-bit samples divided by 255 and 65535, 32-bit
// unsigned by 2^32 - 1, floats as stored. channels: 0 = as stored, else 1, 3 or 4, converted as
// stb converts PNGs (gray = (77 R + 150 G + 29 B) >> 8 on the integers; RGB from gray repeats it;
// alpha is dropped or added as opaque). Pages must agree in size and channels.
Tensor decode_tiff(const void* data, size_t size, const std::string& name, int channels = 0);
// Every page of a one-channel integer TIFF as int64 [N, H, W] holding the stored values (16-bit
// instance ids stay as they are). Float or multi-channel pages are an Error.
Tensor decode_tiff_labels(const void* data, size_t size, const std::string& name);

// The pages of any image file the readers know (TIFF: all of them; PNG, JPEG, BMP: one):
// float32 [N, C, H, W] in [0, 1] / int64 [N, H, W].
Tensor read_image_stack(const std::string& path, int channels = 0);
Tensor read_label_stack(const std::string& path);

// Writes [H, W] or a stack [N, H, W] as one-channel pages: float32 as 32-bit float (probability
// maps: the ISBI submission format), uint8 as 8-bit, int32/int64 as 16-bit (instance labels;
// values outside 0..65535 are an Error). Atomic: a temporary file renamed over `path`.
void write_tiff(const std::string& path, const Tensor& pages);
std::string encode_tiff(const Tensor& pages);

}  // namespace tessera

// Detection transforms with torchvision's GeneralizedRCNNTransform rules: normalisation, resizing to
// a minimum/maximum size (the scale computed in float32 as torchvision does, the image bilinear
// with recompute_scale_factor, masks nearest, boxes by the float32 size ratios) and batching padded
// to a multiple of 32.
#pragma once

#include <vector>

#include "data/dataset.h"

namespace tessera {

// (image - mean) / std per channel; image float [C, H, W].
Tensor normalize_image(const Tensor& image, const std::vector<double>& mean, const std::vector<double>& std);

// The resized size for an image of h x w: the scale is min(min_size / min(h, w), max_size / max(h, w))
// in float32; each side becomes floor(side * scale).
std::pair<int64_t, int64_t> detection_resize_size(int64_t h, int64_t w, double min_size, double max_size);
// Resizes the image (bilinear), masks (nearest) and boxes of a sample.
Sample resize_for_detection(const Sample& s, double min_size, double max_size);
// Boxes [K, 4] scaled from an original (h, w) to a new (h', w') by the float32 ratios.
Tensor resize_boxes(const Tensor& boxes, std::pair<int64_t, int64_t> original, std::pair<int64_t, int64_t> resized);

struct ImageBatch {
  Tensor images;                                    // [N, C, H, W], zero-padded
  std::vector<std::pair<int64_t, int64_t>> sizes;  // each image's (h, w) before padding
};
ImageBatch batch_images(const std::vector<Tensor>& images, int64_t size_divisible = 32);

}  // namespace tessera

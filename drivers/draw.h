// Pictures of detections: instance masks tinted in per-class colours, box outlines, and a label
// ("name 0.93") in a small built-in 5x7 bitmap font, drawn on a copy of the image.
#pragma once

#include <string>
#include <vector>

#include "models/roi_heads.h"

namespace tessera::driver {

// image [1 or 3, H, W] in [0, 1]; detections in the image's coordinates (masks [D, 1, H, W]
// probabilities, thresholded at 0.5). Detections below score_threshold are not drawn. class_names[l]
// names label l (index 0 is the background). Returns RGB [3, H, W].
Tensor draw_detections(const Tensor& image, const Detections& detections, const std::vector<std::string>& class_names,
                       double score_threshold = 0.5);

// Draws text (letters, digits, space and . - : % / _) with its top-left corner at (x, y), `scale`
// pixels per font pixel, on an RGB [3, H, W] float canvas (clipped at the borders).
void draw_text(Tensor& canvas, const std::string& text, int64_t x, int64_t y, const float rgb[3], int64_t scale = 1);

}  // namespace tessera::driver

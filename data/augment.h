// Geometric and photometric augmentation.
//   U-Net (the 2015 paper): elastic deformation — random displacements on a coarse 3x3 grid with a
//   10-pixel standard deviation, interpolated bicubically to every pixel — together with shift,
//   rotation, flips and gray-value changes. One warp is applied identically to the image
//   (bilinear), the labels (nearest) and the weight map (bilinear), mirroring at the borders.
//   Detection: horizontal flip of image, boxes and masks.
#pragma once

#include "data/dataset.h"
#include "data/rng.h"

namespace tessera {

// Source coordinates for every output pixel: float64 [2, H, W] = (y, x). warp() samples image,
// weight (bilinear), mask and instances (nearest) there, mirroring (without repeating the edge)
// outside the image.
Sample warp(const Sample& s, const Tensor& source_yx);
// The identity grid plus a displacement field [2, H, W].
Tensor identity_grid(int64_t H, int64_t W);
// Bicubic (Keys, a = -0.75) interpolation of coarse displacements [2, G, G] to [2, H, W], the grid
// nodes spanning the image corner to corner.
Tensor upsample_displacements(const Tensor& coarse, int64_t H, int64_t W);

struct UnetAugmentOptions {
  double elastic_sigma = 10.0;  // pixels, per coarse-grid node
  int64_t elastic_grid = 3;
  double max_rotation_deg = 180.0;
  double max_shift = 20.0;       // pixels
  bool flips = true;
  double contrast = 0.2;         // gain in [1 - c, 1 + c]
  double brightness = 0.1;       // offset in [-b, b]
  double gamma = 0.25;           // exponent in [1 - g, 1 + g]
};
Sample augment_unet(const Sample& s, DataRng& rng, const UnetAugmentOptions& opts = {});

Sample hflip(const Sample& s);  // image, masks, boxes; semantic mask/instances/weight too

}  // namespace tessera

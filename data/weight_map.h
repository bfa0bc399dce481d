// The U-Net paper's loss weights: w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)), where
// d1, d2 are the distances to the nearest and the second nearest cell, from an exact Euclidean
// distance transform (Felzenszwalb & Huttenlocher's lower envelope of parabolas), and w_c balances
// the class frequencies (w_c(k) = N / (K n_k): the class weights average to 1 over the pixels). The
// separation term applies to background pixels — the gaps between cells that the net must learn.
#pragma once

#include "core/tensor.h"

namespace tessera {

// Squared Euclidean distance from every pixel to the nearest pixel where `inside` (bool/uint8/int
// [H, W]) is nonzero; +inf everywhere when there is none. float64 [H, W].
Tensor squared_distance_transform(const Tensor& inside);

// mask: int64 [H, W] semantic labels in [0, num_classes); instances: int64 [H, W] cell ids (0 =
// background). float32 [H, W].
Tensor unet_weight_map(const Tensor& mask, const Tensor& instances, int64_t num_classes = 2, double w0 = 10.0,
                       double sigma = 5.0);

}  // namespace tessera

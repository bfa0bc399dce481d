// Segmentation metrics: per-class IoU and Dice, pixel error, Rand error (1 - Rand index between two
// labelings, as the ISBI 2012 challenge scores membrane segmentations), and the instance view used
// for touching cells: connected components of the predicted foreground matched one-to-one to the
// true cells at IoU >= 0.5, so that two touching cells predicted as one blob count as errors.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace tessera {

// Labels int64 [H, W] (any batch dims allowed for the pixel metrics: shapes must match).
std::vector<double> iou_per_class(const Tensor& pred, const Tensor& target, int64_t num_classes);  // NaN where a class is absent from both
std::vector<double> dice_per_class(const Tensor& pred, const Tensor& target, int64_t num_classes);
double pixel_error(const Tensor& pred, const Tensor& target);
// 1 - Rand index over all pixel pairs of two labelings (any label values).
double rand_error(const Tensor& a, const Tensor& b);

// Connected components (8- or 4-connectivity) of the nonzero pixels of an [H, W] mask: int64 ids
// 1..n in row-major order of their first pixel.
Tensor connected_components(const Tensor& mask, int64_t* count = nullptr, int connectivity = 8);

struct InstanceScore {
  int64_t true_cells = 0, predicted = 0, matched = 0;
  int64_t merged = 0;  // predicted components covering >= 50% of two or more true cells each
  double precision() const { return predicted ? static_cast<double>(matched) / predicted : 0.0; }
  double recall() const { return true_cells ? static_cast<double>(matched) / true_cells : 0.0; }
  double f1() const { const double p = precision(), r = recall(); return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }
};
// pred_foreground: [H, W] (nonzero = cell); true_instances: [H, W] ids (0 = none).
InstanceScore instance_score(const Tensor& pred_foreground, const Tensor& true_instances, double iou_threshold = 0.5);

}  // namespace tessera

// Anchors as torchvision's AnchorGenerator makes them: per level, cell anchors of every (aspect
// ratio, size) pair centred on 0 and rounded (half to even), shifted to every feature-map location
// with the level's stride (padded image size // feature size). Order: location-major (row, column),
// then aspect ratio, then size — the order the RPN head's outputs are flattened in.
#pragma once

#include <vector>

#include "autograd/ops.h"

namespace tessera {

class AnchorGenerator {
 public:
  // sizes[level] and aspect_ratios[level] (height / width); the FPN default is
  // {{32}, {64}, {128}, {256}, {512}} x {0.5, 1, 2}.
  AnchorGenerator(std::vector<std::vector<double>> sizes, std::vector<std::vector<double>> aspect_ratios);
  static AnchorGenerator fpn_default();

  int64_t anchors_per_location(size_t level) const;
  // [A, 4] cell anchors of one level, float32.
  Tensor cell_anchors(size_t level) const;
  // Anchors for every level of a batch whose padded image size is `image_size` (same for each
  // image): [sum over levels of H * W * A, 4], float32 on the features' device.
  Tensor anchors(const std::vector<Tensor>& features, Int2 image_size) const;
  // H * W * A per level.
  std::vector<int64_t> anchors_per_level(const std::vector<Tensor>& features) const;

 private:
  std::vector<std::vector<double>> sizes_, ratios_;
};

}  // namespace tessera

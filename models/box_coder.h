// BoxCoder: torchvision.models.detection._utils.BoxCoder — box regression targets (encode) and
// their inverse (decode), with per-coordinate weights and the log(1000/16) clamp on dw, dh.
#pragma once

#include <array>
#include <cmath>

#include "autograd/ops.h"

namespace tessera {

class BoxCoder {
 public:
  explicit BoxCoder(std::array<double, 4> weights, double bbox_xform_clip = std::log(1000.0 / 16.0));

  // Targets [N, 4] that take proposals [N, 4] to reference_boxes [N, 4].
  Tensor encode(const Tensor& reference_boxes, const Tensor& proposals) const;
  // Boxes [N, 4k] from codes [N, 4k] applied to boxes [N, 4] (k classes per row).
  Tensor decode(const Tensor& rel_codes, const Tensor& boxes) const;

  const std::array<double, 4>& weights() const { return weights_; }

 private:
  std::array<double, 4> weights_;
  double clip_;
};

}  // namespace tessera

// The second stage of Mask R-CNN, as torchvision's RoIHeads (models/detection/roi_heads.py):
// proposals (plus the ground-truth boxes, when training) matched at 0.5 and sampled (512 per image,
// a quarter positive); MultiScaleRoIAlign 7x7 over P2-P5 into the two-layer 1024 MLP box head
// ("box_head.fc6/fc7") and the class/box predictor ("box_predictor.cls_score/bbox_pred", box
// weights 10, 10, 5, 5); MultiScaleRoIAlign 14x14 into four 3x3 convolutions + ReLU
// ("mask_head.<i>.0"), a 2x2 deconvolution + ReLU and a 1x1 convolution to K 28x28 mask logits
// ("mask_predictor.conv5_mask/mask_fcn_logits"). Inference: softmax scores, per-class boxes
// clipped, score > 0.05, small boxes removed, per-class NMS 0.5, the best 100; the mask of each
// detection's class.
#pragma once

#include <array>
#include <vector>

#include "data/dataset.h"
#include "layers/layers.h"
#include "models/box_coder.h"
#include "models/matcher.h"

namespace tessera {

struct RoIHeadsOptions {
  double fg_iou_thresh = 0.5, bg_iou_thresh = 0.5;
  int64_t batch_size_per_image = 512;
  double positive_fraction = 0.25;
  std::array<double, 4> bbox_reg_weights = {10.0, 10.0, 5.0, 5.0};
  double score_thresh = 0.05, nms_thresh = 0.5;
  int64_t detections_per_img = 100;
  int64_t representation_size = 1024;
  bool masks = true;  // false: Faster R-CNN
};

// Detections of one image. masks: probabilities [D, 1, 28, 28] from the heads, or [D, 1, H, W]
// once pasted into the image.
struct Detections {
  Tensor boxes;   // [D, 4] float32
  Tensor scores;  // [D]
  Tensor labels;  // [D] int64, 1..num_classes-1
  Tensor masks;
};

struct RoIHeadsOutput {
  std::vector<Detections> detections;  // inference
  Tensor loss_classifier, loss_box_reg, loss_mask;  // training
};

class RoIHeads : public Module {
 public:
  RoIHeads(int64_t in_channels, int64_t num_classes, RoIHeadsOptions options = {}, Generator* gen = nullptr);
  // features: P2..P5 (any further levels are ignored); image_sizes: each image's size before
  // padding; targets (training): per image boxes [G, 4], labels [G] and masks [G, H, W] in the
  // resized image's coordinates.
  using Module::forward;  // the one-input forward stays visible (it is an Error for this module)
  RoIHeadsOutput forward(const std::vector<Tensor>& features, const std::vector<Int2>& image_sizes,
                         const std::vector<Tensor>& proposals, const std::vector<Sample>* targets = nullptr,
                         Generator* sampler_gen = nullptr);
  int64_t num_classes() const { return num_classes_; }
  const RoIHeadsOptions& options() const { return opts_; }

 private:
  Tensor box_features(const std::vector<Tensor>& features, const std::vector<Tensor>& boxes, const std::vector<Int2>& sizes);
  Tensor mask_logits(const std::vector<Tensor>& features, const std::vector<Tensor>& boxes, const std::vector<Int2>& sizes);

  int64_t num_classes_;
  RoIHeadsOptions opts_;
  BoxCoder coder_;
  Matcher matcher_;
  BalancedPositiveNegativeSampler sampler_;
  std::shared_ptr<Linear> fc6_, fc7_, cls_score_, bbox_pred_;
  std::vector<std::shared_ptr<Conv2d>> mask_convs_;
  std::shared_ptr<ConvTranspose2d> conv5_mask_;
  std::shared_ptr<Conv2d> mask_fcn_logits_;
};

// torchvision's paste_masks_in_image: each [1, M, M] probability mask is padded by one pixel, its
// box enlarged by (M + 2) / M and truncated to integers, the mask resized bilinearly to the box and
// copied into a zero image of `image_size`. masks [D, 1, M, M], boxes [D, 4] -> [D, 1, H, W].
Tensor paste_masks_in_image(const Tensor& masks, const Tensor& boxes, Int2 image_size, int64_t padding = 1);

// [K, 5] rows (image index, x1, y1, x2, y2) from per-image boxes.
Tensor boxes_to_rois(const std::vector<Tensor>& boxes);

// torchvision.ops.MultiScaleRoIAlign in one call: FPN features (finest first, [N, C, h_l, w_l]),
// each image's boxes [K_i, 4] (x1, y1, x2, y2 in the batch's image coordinates) and the images'
// sizes before padding; the level scales are inferred from the largest size as torchvision does.
// Returns [sum K_i, C, output_size] in the order of the boxes.
Tensor multi_scale_roi_align(const std::vector<Tensor>& features, const std::vector<Tensor>& boxes,
                             const std::vector<Int2>& image_sizes, Int2 output_size, int64_t sampling_ratio = 2);

}  // namespace tessera

// Mask R-CNN (He et al., 2017) with a ResNet-FPN backbone, assembled as torchvision's
// maskrcnn_resnet50_fpn: GeneralizedRCNNTransform (ImageNet normalisation, resize to min/max size,
// batching padded to a multiple of 32), "backbone" (body + fpn), "rpn", "roi_heads", and the
// post-processing that maps boxes back to each image and pastes the masks. The state_dict keys are
// torchvision's, so its checkpoints (saved as safetensors) load as they are.
#pragma once

#include <vector>

#include "data/dataset.h"
#include "models/fpn.h"
#include "models/roi_heads.h"
#include "models/rpn.h"

namespace tessera {

struct MaskRCNNOptions {
  int64_t num_classes = 91;  // including the background
  ResNetOptions backbone{50, true, 3, 0};
  double min_size = 800, max_size = 1333;
  // One anchor size per FPN level P2..P6 (torchvision: 32..512), each with aspect ratios 0.5, 1, 2.
  // Smaller images want smaller anchors (the shapes demo at 128 px uses 16..256).
  std::vector<double> anchor_sizes = {32, 64, 128, 256, 512};
  std::vector<double> image_mean = {0.485, 0.456, 0.406}, image_std = {0.229, 0.224, 0.225};
  RPNOptions rpn;
  RoIHeadsOptions roi_heads;
};

struct MaskRCNNLosses {
  Tensor loss_classifier, loss_box_reg, loss_mask, loss_objectness, loss_rpn_box_reg;
  Tensor total() const;
};

// What the stages saw, for parity tests and diagnosis.
struct MaskRCNNTrace {
  Tensor batch;                 // the normalised, resized, padded batch
  std::vector<Int2> sizes;      // each image's size after resizing (before padding)
  std::vector<Tensor> features; // P2..P6
  std::vector<Tensor> proposals;
  std::vector<Detections> raw;  // detections in the resized coordinates, masks 28x28
};

class MaskRCNN : public Module {
 public:
  explicit MaskRCNN(MaskRCNNOptions options = {}, Generator* gen = nullptr);
  // Inference (call eval() first): images float [3, H, W] in [0, 1], any sizes. Detections in each
  // image's own coordinates; masks are probabilities [D, 1, H, W] (threshold at 0.5 for binary).
  std::vector<Detections> detect(const std::vector<Tensor>& images, MaskRCNNTrace* trace = nullptr);
  // Training (train mode): samples with image, boxes [G, 4], labels [G] and masks [G, H, W] in the
  // image's coordinates (G may be 0). The five losses of torchvision's model.
  MaskRCNNLosses losses(const std::vector<Sample>& samples, Generator* sampler_gen = nullptr);
  const MaskRCNNOptions& options() const { return opts_; }
  BackboneWithFPN& backbone() { return *backbone_; }
  RegionProposalNetwork& rpn() { return *rpn_; }
  RoIHeads& roi_heads() { return *roi_heads_; }

 private:
  // Normalise + resize (targets too) + batch.
  struct Prepared {
    Tensor batch;
    std::vector<Int2> sizes;
    std::vector<Sample> targets;
  };
  Prepared prepare(const std::vector<Sample>& samples) const;

  MaskRCNNOptions opts_;
  std::shared_ptr<BackboneWithFPN> backbone_;
  std::shared_ptr<RegionProposalNetwork> rpn_;
  std::shared_ptr<RoIHeads> roi_heads_;
};

}  // namespace tessera

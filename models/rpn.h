// Region Proposal Network as torchvision's (models/detection/rpn.py): a 3x3 convolution + ReLU
// shared over the pyramid levels, 1x1 objectness logits (A per location) and box deltas (4A);
// proposals decoded from the anchors, per-level top-k by objectness, clipped, small boxes removed,
// NMS per level, top-k per image. Training: anchors matched at 0.7 / 0.3 (with low-quality
// matches), 256 sampled per image at half positives, binary cross-entropy and smooth-L1 (beta 1/9).
#pragma once

#include <vector>

#include "layers/layers.h"
#include "models/anchors.h"
#include "models/box_coder.h"
#include "models/matcher.h"

namespace tessera {

struct RPNOptions {
  double fg_iou_thresh = 0.7, bg_iou_thresh = 0.3;
  int64_t batch_size_per_image = 256;
  double positive_fraction = 0.5;
  int64_t pre_nms_top_n_train = 2000, pre_nms_top_n_test = 1000;    // per level
  int64_t post_nms_top_n_train = 2000, post_nms_top_n_test = 1000;  // per image
  double nms_thresh = 0.7, score_thresh = 0.0, min_size = 1e-3;
};

class RPNHead : public Module {
 public:
  RPNHead(int64_t in_channels, int64_t num_anchors, Generator* gen = nullptr);
  // Per level: objectness [N, A, H, W] and deltas [N, 4A, H, W].
  std::pair<std::vector<Tensor>, std::vector<Tensor>> forward_levels(const std::vector<Tensor>& features);

 private:
  std::shared_ptr<Conv2d> conv_, cls_logits_, bbox_pred_;
};

struct RPNOutput {
  std::vector<Tensor> boxes;   // per image: proposals [P_i, 4] (no gradient)
  std::vector<Tensor> scores;  // per image: objectness probabilities [P_i]
  Tensor loss_objectness, loss_rpn_box_reg;  // training only
};

class RegionProposalNetwork : public Module {
 public:
  RegionProposalNetwork(int64_t in_channels, AnchorGenerator anchors = AnchorGenerator::fpn_default(), RPNOptions options = {},
                        Generator* gen = nullptr);
  // features: the pyramid of the padded batch of size padded_size; image_sizes: each image's size
  // before padding; gt_boxes (training): per image [G_i, 4] (G_i may be 0).
  using Module::forward;  // the one-input forward stays visible (it is an Error for this module)
  RPNOutput forward(const std::vector<Tensor>& features, Int2 padded_size, const std::vector<Int2>& image_sizes,
                    const std::vector<Tensor>* gt_boxes = nullptr, Generator* sampler_gen = nullptr);
  const AnchorGenerator& anchor_generator() const { return anchors_; }

 private:
  std::shared_ptr<RPNHead> head_;
  AnchorGenerator anchors_;
  RPNOptions opts_;
  BoxCoder coder_{{1.0, 1.0, 1.0, 1.0}};
  Matcher matcher_;
  BalancedPositiveNegativeSampler sampler_;
};

}  // namespace tessera

// Region Proposal Network: head, proposal filtering, losses.
#include "models/rpn.h"

#include <algorithm>

#include "core/grad_mode.h"
#include "layers/init.h"

namespace tessera {

RPNHead::RPNHead(int64_t in_channels, int64_t num_anchors, Generator* gen) {
  // "conv.0.0": torchvision wraps the 3x3 convolution in a Conv2dNormActivation inside a Sequential.
  auto conv = std::make_shared<Sequential>();
  auto block = conv->push_back(std::make_shared<Sequential>());
  conv_ = block->push_back(std::make_shared<Conv2d>(in_channels, in_channels, 3, 1, 1, 1, 1, true, gen));
  register_module("conv", conv);
  cls_logits_ = register_module("cls_logits", std::make_shared<Conv2d>(in_channels, num_anchors, 1, 1, 0, 1, 1, true, gen));
  bbox_pred_ = register_module("bbox_pred", std::make_shared<Conv2d>(in_channels, 4 * num_anchors, 1, 1, 0, 1, 1, true, gen));
  for (auto* c : {conv_.get(), cls_logits_.get(), bbox_pred_.get()}) {
    init::normal_(c->weight, 0.0, 0.01, gen);
    init::constant_(c->bias, 0.0);
  }
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> RPNHead::forward_levels(const std::vector<Tensor>& features) {
  std::vector<Tensor> logits, deltas;
  for (const Tensor& f : features) {
    Tensor t = conv_->forward_relu(f);
    logits.push_back(cls_logits_->forward(t));
    deltas.push_back(bbox_pred_->forward(t));
  }
  return {logits, deltas};
}

namespace {

// [N, A*C, H, W] -> [N, H*W*A, C]: location-major, as the anchors are ordered.
Tensor flatten_level(const Tensor& x, int64_t C) {
  const int64_t N = x.size(0), A = x.size(1) / C, H = x.size(2), W = x.size(3);
  return x.view({N, A, C, H, W}).permute({0, 3, 4, 1, 2}).reshape({N, H * W * A, C});
}

}  // namespace

RegionProposalNetwork::RegionProposalNetwork(int64_t in_channels, AnchorGenerator anchors, RPNOptions o, Generator* gen)
    : anchors_(std::move(anchors)),
      opts_(o),
      matcher_(o.fg_iou_thresh, o.bg_iou_thresh, true),
      sampler_(o.batch_size_per_image, o.positive_fraction) {
  const int64_t A = anchors_.anchors_per_location(0);
  head_ = register_module("head", std::make_shared<RPNHead>(in_channels, A, gen));
}

RPNOutput RegionProposalNetwork::forward(const std::vector<Tensor>& features, Int2 padded_size,
                                         const std::vector<Int2>& image_sizes, const std::vector<Tensor>* gt_boxes,
                                         Generator* sampler_gen) {
  TS_CHECK(!features.empty(), "RegionProposalNetwork: no feature maps");
  const int64_t N = features[0].size(0);
  TS_CHECK(static_cast<int64_t>(image_sizes.size()) == N, "RegionProposalNetwork: ", N, " images in the batch but ",
           image_sizes.size(), " image sizes");
  const bool training = is_training();
  TS_CHECK(!training || (gt_boxes && static_cast<int64_t>(gt_boxes->size()) == N),
           "RegionProposalNetwork: training needs the ground-truth boxes of every image");
  auto [logit_levels, delta_levels] = head_->forward_levels(features);
  const Tensor anchors = anchors_.anchors(features, padded_size);  // [T, 4]
  const std::vector<int64_t> per_level = anchors_.anchors_per_level(features);
  std::vector<Tensor> flat_logits, flat_deltas;
  for (size_t l = 0; l < features.size(); ++l) {
    const int64_t A = anchors_.anchors_per_location(l);
    TS_CHECK(logit_levels[l].size(1) == A, "RegionProposalNetwork: level ", l, " has ", A, " anchors per location but the ",
             "head predicts ", logit_levels[l].size(1));
    flat_logits.push_back(flatten_level(logit_levels[l], 1).squeeze(2));
    flat_deltas.push_back(flatten_level(delta_levels[l], 4));
  }
  const Tensor objectness = cat(flat_logits, 1);  // [N, T]
  const Tensor deltas = cat(flat_deltas, 1);      // [N, T, 4]
  const int64_t T = anchors.size(0);

  RPNOutput out;
  {
    NoGradGuard no_grad;
    const Tensor proposals =
        coder_.decode(deltas.detach().reshape({N * T, 4}), anchors.unsqueeze(0).expand({N, T, 4}).reshape({N * T, 4}))
            .reshape({N, T, 4});
    const int64_t pre = training ? opts_.pre_nms_top_n_train : opts_.pre_nms_top_n_test;
    const int64_t post = training ? opts_.post_nms_top_n_train : opts_.post_nms_top_n_test;
    const Device dev = anchors.device();
    for (int64_t b = 0; b < N; ++b) {
      const Tensor ob = objectness.select(0, b).detach();
      // Per level, the pre-NMS top-k by objectness (descending; ties: lower index first).
      std::vector<Tensor> picks, levels;
      int64_t offset = 0;
      for (size_t l = 0; l < per_level.size(); ++l) {
        const int64_t n = per_level[l], k = std::min(pre, n);
        Tensor idx = argsort(ob.narrow(0, offset, n), 0, true).narrow(0, 0, k);
        picks.push_back(add(idx, static_cast<double>(offset)));
        levels.push_back(full({k}, static_cast<double>(l), options(kInt64, dev)));
        offset += n;
      }
      Tensor pick = cat(picks), lvl = cat(levels);
      Tensor scores = sigmoid(index_select(ob, 0, pick));
      Tensor boxes = clip_boxes_to_image(index_select(proposals.select(0, b), 0, pick), image_sizes[static_cast<size_t>(b)]);
      Tensor keep = remove_small_boxes(boxes, opts_.min_size);
      boxes = index_select(boxes, 0, keep), scores = index_select(scores, 0, keep), lvl = index_select(lvl, 0, keep);
      keep = nonzero(ge(scores, opts_.score_thresh)).select(1, 0);
      boxes = index_select(boxes, 0, keep), scores = index_select(scores, 0, keep), lvl = index_select(lvl, 0, keep);
      keep = batched_nms(boxes, scores, lvl, opts_.nms_thresh);
      keep = keep.narrow(0, 0, std::min<int64_t>(post, keep.size(0)));
      out.boxes.push_back(index_select(boxes, 0, keep).contiguous());
      out.scores.push_back(index_select(scores, 0, keep).contiguous());
    }
  }
  if (!training) return out;

  // Losses: match anchors to ground truth, sample, and score the sample.
  std::vector<Tensor> labels, targets, pos_masks, neg_masks;
  for (int64_t b = 0; b < N; ++b) {
    NoGradGuard no_grad;
    const Tensor& gt = (*gt_boxes)[static_cast<size_t>(b)];
    TS_CHECK(gt.dim() == 2 && gt.size(1) == 4, "RegionProposalNetwork: ground-truth boxes must be [G, 4], got ",
             shape_str(gt.shape()));
    Tensor label, matched;
    if (gt.size(0) == 0) {  // an image without objects: every anchor is background
      label = zeros({T}, options(kFloat32, anchors.device()));
      matched = zeros_like(anchors);
    } else {
      const Tensor m = matcher_(box_iou(gt.to(anchors.dtype()), anchors));
      matched = index_select(gt.to(anchors.dtype()), 0, clamp_min(m, 0.0));
      label = ge(m, 0.0).to(kFloat32);
      label = where(eq(m, static_cast<double>(Matcher::kBetweenThresholds)), -1.0, label);
    }
    auto [pos, neg] = sampler_(label, sampler_gen);
    labels.push_back(label);
    targets.push_back(coder_.encode(matched, anchors));
    pos_masks.push_back(pos);
    neg_masks.push_back(neg);
  }
  const Tensor pos = nonzero(cat(pos_masks)).select(1, 0);
  const Tensor sampled = nonzero(logical_or(cat(pos_masks), cat(neg_masks))).select(1, 0);
  const Tensor flat_obj = objectness.reshape({N * T}), flat_deltas_all = deltas.reshape({N * T, 4});
  const Tensor all_labels = cat(labels), all_targets = cat(targets);
  out.loss_rpn_box_reg = div(smooth_l1_loss(index_select(flat_deltas_all, 0, pos), index_select(all_targets, 0, pos), 1.0 / 9.0, "sum"),
                             static_cast<double>(std::max<int64_t>(1, sampled.size(0))));
  out.loss_objectness =
      binary_cross_entropy_with_logits(index_select(flat_obj, 0, sampled), index_select(all_labels, 0, sampled));
  return out;
}

}  // namespace tessera

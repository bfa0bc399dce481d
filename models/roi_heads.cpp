// RoIHeads: sampling, box and mask heads, losses, detection post-processing, mask pasting.
#include "models/roi_heads.h"

#include <algorithm>
#include <cmath>

#include "core/grad_mode.h"
#include "layers/init.h"

namespace tessera {

Tensor boxes_to_rois(const std::vector<Tensor>& boxes) {
  std::vector<Tensor> rows;
  for (size_t i = 0; i < boxes.size(); ++i) {
    TS_CHECK(boxes[i].dim() == 2 && boxes[i].size(1) == 4, "boxes_to_rois: boxes must be [K, 4], got ", shape_str(boxes[i].shape()));
    Tensor idx = full({boxes[i].size(0), 1}, static_cast<double>(i), tessera::options(boxes[i].dtype(), boxes[i].device()));
    rows.push_back(cat({idx, boxes[i]}, 1));
  }
  TS_CHECK(!rows.empty(), "boxes_to_rois: no images");
  return cat(rows);
}

namespace {

// A module that only names its children (torchvision's nn.Module with attributes).
struct Container : Module {
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    return register_module(name, m);
  }
};

}  // namespace

RoIHeads::RoIHeads(int64_t in_channels, int64_t num_classes, RoIHeadsOptions o, Generator* gen)
    : num_classes_(num_classes),
      opts_(o),
      coder_(o.bbox_reg_weights),
      matcher_(o.fg_iou_thresh, o.bg_iou_thresh, false),
      sampler_(o.batch_size_per_image, o.positive_fraction) {
  TS_CHECK(num_classes >= 2, "RoIHeads: num_classes counts the background and must be at least 2, got ", num_classes);
  TS_CHECK(o.detections_per_img >= 1, "RoIHeads: detections_per_img must be at least 1, got ", o.detections_per_img);
  auto bh = std::make_shared<Container>();
  fc6_ = bh->add("fc6", std::make_shared<Linear>(in_channels * 7 * 7, o.representation_size, true, gen));
  fc7_ = bh->add("fc7", std::make_shared<Linear>(o.representation_size, o.representation_size, true, gen));
  register_module("box_head", bh);
  auto bp = std::make_shared<Container>();
  cls_score_ = bp->add("cls_score", std::make_shared<Linear>(o.representation_size, num_classes, true, gen));
  bbox_pred_ = bp->add("bbox_pred", std::make_shared<Linear>(o.representation_size, num_classes * 4, true, gen));
  register_module("box_predictor", bp);
  if (o.masks) {
    auto mh = std::make_shared<Sequential>();
    for (int i = 0; i < 4; ++i) {
      auto block = mh->push_back(std::make_shared<Sequential>());
      auto conv = block->push_back(std::make_shared<Conv2d>(i == 0 ? in_channels : 256, 256, 3, 1, 1, 1, 1, true, gen));
      init::kaiming_normal_(conv->weight, "fan_out", gen);
      init::constant_(conv->bias, 0.0);
      mask_convs_.push_back(conv);
    }
    register_module("mask_head", mh);
    auto mp = std::make_shared<Container>();
    conv5_mask_ = mp->add("conv5_mask", std::make_shared<ConvTranspose2d>(256, 256, 2, 2, 0, 0, 1, true, 1, gen));
    mask_fcn_logits_ = mp->add("mask_fcn_logits", std::make_shared<Conv2d>(256, num_classes, 1, 1, 0, 1, 1, true, gen));
    init::kaiming_normal_(conv5_mask_->weight, "fan_out", gen);
    init::kaiming_normal_(mask_fcn_logits_->weight, "fan_out", gen);
    register_module("mask_predictor", mp);
  }
}

namespace {

std::vector<Tensor> pooled_levels(const std::vector<Tensor>& features) {
  TS_CHECK(features.size() >= 4, "RoIHeads: need the pyramid levels P2..P5, got ", features.size(), " levels");
  return std::vector<Tensor>(features.begin(), features.begin() + 4);
}

// MultiScaleRoIAlign infers the level scales from the largest image size (before padding).
Int2 largest_size(const std::vector<Int2>& sizes) {
  Int2 m{0, 0};
  for (const Int2& s : sizes) m = Int2{std::max(m.h, s.h), std::max(m.w, s.w)};
  return m;
}

}  // namespace

Tensor multi_scale_roi_align(const std::vector<Tensor>& features, const std::vector<Tensor>& boxes,
                             const std::vector<Int2>& image_sizes, Int2 output_size, int64_t sampling_ratio) {
  TS_CHECK(!features.empty(), "multi_scale_roi_align: no feature maps");
  TS_CHECK(boxes.size() == image_sizes.size(), "multi_scale_roi_align: ", boxes.size(), " images' boxes but ", image_sizes.size(),
           " image sizes");
  TS_CHECK(static_cast<int64_t>(boxes.size()) == features.front().size(0), "multi_scale_roi_align: ", boxes.size(),
           " images' boxes for a batch of ", features.front().size(0));
  return multi_scale_roi_align(features, boxes_to_rois(boxes), infer_roi_scales(features, largest_size(image_sizes)), output_size,
                               sampling_ratio);
}

Tensor RoIHeads::box_features(const std::vector<Tensor>& features, const std::vector<Tensor>& boxes,
                              const std::vector<Int2>& sizes) {
  const std::vector<Tensor> levels = pooled_levels(features);
  Tensor pooled = multi_scale_roi_align(levels, boxes, sizes, 7, 2);
  Tensor x = relu(fc6_->forward(pooled.flatten(1)));
  return relu(fc7_->forward(x));
}

Tensor RoIHeads::mask_logits(const std::vector<Tensor>& features, const std::vector<Tensor>& boxes, const std::vector<Int2>& sizes) {
  const std::vector<Tensor> levels = pooled_levels(features);
  Tensor x = multi_scale_roi_align(levels, boxes, sizes, 14, 2);
  for (auto& conv : mask_convs_) x = conv->forward_relu(x);
  x = relu(conv5_mask_->forward(x));
  return mask_fcn_logits_->forward(x);
}

RoIHeadsOutput RoIHeads::forward(const std::vector<Tensor>& features, const std::vector<Int2>& image_sizes,
                                 const std::vector<Tensor>& proposals, const std::vector<Sample>* targets, Generator* sampler_gen) {
  const size_t N = proposals.size();
  TS_CHECK(N == image_sizes.size(), "RoIHeads: ", N, " proposal sets but ", image_sizes.size(), " image sizes");
  RoIHeadsOutput out;
  if (is_training()) {
    TS_CHECK(targets && targets->size() == N, "RoIHeads: training needs the targets of every image");
    // Sampling: proposals + ground truth, matched at 0.5, 512 per image at 0.25 positive.
    std::vector<Tensor> sampled_boxes, labels, regression_targets, matched_idxs;
    for (size_t b = 0; b < N; ++b) {
      NoGradGuard no_grad;
      const Sample& t = (*targets)[b];
      const Tensor gt = t.boxes.to(proposals[b].dtype());
      Tensor props = cat({proposals[b], gt});
      Tensor label, matched;
      if (gt.size(0) == 0) {
        label = zeros({props.size(0)}, tessera::options(kInt64, props.device()));
        matched = zeros({props.size(0)}, tessera::options(kInt64, props.device()));
      } else {
        const Tensor m = matcher_(box_iou(gt, props));
        matched = clamp_min(m, 0.0);
        label = index_select(t.labels.to(kInt64), 0, matched);
        label = where(eq(m, static_cast<double>(Matcher::kBelowLowThreshold)), 0.0, label);
        label = where(eq(m, static_cast<double>(Matcher::kBetweenThresholds)), -1.0, label);
      }
      auto [pos, neg] = sampler_(label, sampler_gen);
      const Tensor keep = nonzero(logical_or(pos, neg)).select(1, 0);
      props = index_select(props, 0, keep);
      label = index_select(label, 0, keep);
      matched = index_select(matched, 0, keep);
      const Tensor matched_gt = gt.size(0) == 0 ? zeros_like(props) : index_select(gt, 0, matched);
      sampled_boxes.push_back(props);
      labels.push_back(label);
      matched_idxs.push_back(matched);
      regression_targets.push_back(coder_.encode(matched_gt, props));
    }
    const Tensor x = box_features(features, sampled_boxes, image_sizes);
    const Tensor class_logits = cls_score_->forward(x), box_regression = bbox_pred_->forward(x);
    const Tensor all_labels = cat(labels), all_targets = cat(regression_targets);
    out.loss_classifier = cross_entropy(class_logits, all_labels);
    const Tensor pos = nonzero(gt(all_labels, 0.0)).select(1, 0);
    const int64_t R = class_logits.size(0);
    const Tensor rows = add(mul(pos, static_cast<double>(num_classes_)), index_select(all_labels, 0, pos));
    const Tensor pred = index_select(box_regression.reshape({R * num_classes_, 4}), 0, rows);
    out.loss_box_reg = div(smooth_l1_loss(pred, index_select(all_targets, 0, pos), 1.0 / 9.0, "sum"),
                           static_cast<double>(std::max<int64_t>(1, all_labels.numel())));
    if (opts_.masks) {
      std::vector<Tensor> mask_boxes, mask_targets, mask_labels;
      for (size_t b = 0; b < N; ++b) {
        const Tensor p = nonzero(gt(labels[b], 0.0)).select(1, 0);
        const Tensor boxes_b = index_select(sampled_boxes[b], 0, p);
        mask_boxes.push_back(boxes_b);
        mask_labels.push_back(index_select(labels[b], 0, p));
        NoGradGuard no_grad;
        // Targets: RoIAlign (M x M, scale 1, adaptive sampling, not aligned) of the matched
        // ground-truth mask over each positive box, as torchvision's project_masks_on_boxes.
        const Tensor idx = index_select(matched_idxs[b], 0, p).to(boxes_b.dtype()).unsqueeze(1);
        const Sample& t = (*targets)[b];
        if (boxes_b.size(0) == 0) {
          mask_targets.push_back(zeros({0, 28, 28}, tessera::options(boxes_b.dtype(), boxes_b.device())));
          continue;
        }
        TS_CHECK(t.masks.defined() && t.masks.dim() == 3 && t.masks.size(0) == t.boxes.size(0),
                 "RoIHeads: training with masks needs masks [G, H, W] for the ", t.boxes.size(0), " boxes of image ", b);
        const Tensor gt_masks = t.masks.to(boxes_b.dtype()).to(boxes_b.device()).unsqueeze(1);
        mask_targets.push_back(roi_align(gt_masks, cat({idx, boxes_b}, 1), 28, 1.0, -1, false).select(1, 0));
      }
      const Tensor targets_all = cat(mask_targets), labels_all = cat(mask_labels);
      if (targets_all.size(0) == 0) {
        // No positive box in the batch: a zero loss that still reaches the mask head's graph.
        out.loss_mask = mul(sum(mask_fcn_logits_->weight), 0.0);
      } else {
        const Tensor logits = mask_logits(features, mask_boxes, image_sizes);  // [P, K, 28, 28]
        const int64_t P = logits.size(0), M = logits.size(2);
        const Tensor rows_m = add(mul(arange(P, tessera::options(kInt64, logits.device())), static_cast<double>(num_classes_)), labels_all);
        const Tensor chosen = index_select(logits.reshape({P * num_classes_, M, M}), 0, rows_m);
        out.loss_mask = binary_cross_entropy_with_logits(chosen, targets_all);
      }
    }
    return out;
  }

  // Inference.
  NoGradGuard no_grad;
  const Tensor x = box_features(features, proposals, image_sizes);
  const Tensor class_logits = cls_score_->forward(x), box_regression = bbox_pred_->forward(x);
  const Tensor all_proposals = cat(proposals);
  const Tensor pred_boxes = coder_.decode(box_regression, all_proposals).reshape({all_proposals.size(0), num_classes_, 4});
  const Tensor pred_scores = softmax(class_logits, -1);
  int64_t offset = 0;
  for (size_t b = 0; b < N; ++b) {
    const int64_t n = proposals[b].size(0);
    Tensor boxes = clip_boxes_to_image(pred_boxes.narrow(0, offset, n), image_sizes[b]);
    Tensor scores = pred_scores.narrow(0, offset, n);
    offset += n;
    const Device dev = boxes.device();
    Tensor labels = arange(num_classes_, tessera::options(kInt64, dev)).unsqueeze(0).expand({n, num_classes_});
    // Drop the background column, flatten (proposal-major, then class).
    boxes = boxes.narrow(1, 1, num_classes_ - 1).reshape({n * (num_classes_ - 1), 4});
    scores = scores.narrow(1, 1, num_classes_ - 1).reshape({n * (num_classes_ - 1)});
    labels = labels.narrow(1, 1, num_classes_ - 1).reshape({n * (num_classes_ - 1)});
    Tensor keep = nonzero(gt(scores, opts_.score_thresh)).select(1, 0);
    boxes = index_select(boxes, 0, keep), scores = index_select(scores, 0, keep), labels = index_select(labels, 0, keep);
    keep = remove_small_boxes(boxes, 1e-2);
    boxes = index_select(boxes, 0, keep), scores = index_select(scores, 0, keep), labels = index_select(labels, 0, keep);
    keep = batched_nms(boxes, scores, labels, opts_.nms_thresh);
    keep = keep.narrow(0, 0, std::min<int64_t>(opts_.detections_per_img, keep.size(0)));
    out.detections.push_back(Detections{index_select(boxes, 0, keep).contiguous(), index_select(scores, 0, keep).contiguous(),
                                        index_select(labels, 0, keep).contiguous(), Tensor()});
  }
  if (opts_.masks) {
    std::vector<Tensor> det_boxes;
    for (const Detections& d : out.detections) det_boxes.push_back(d.boxes);
    int64_t total = 0;
    for (const Tensor& b : det_boxes) total += b.size(0);
    if (total > 0) {
      const Tensor logits = mask_logits(features, det_boxes, image_sizes);
      const int64_t M = logits.size(2);
      std::vector<Tensor> labels;
      for (const Detections& d : out.detections) labels.push_back(d.labels);
      const Tensor rows = add(mul(arange(total, tessera::options(kInt64, logits.device())), static_cast<double>(num_classes_)), cat(labels));
      const Tensor probs = sigmoid(index_select(logits.reshape({total * num_classes_, M, M}), 0, rows)).unsqueeze(1);
      int64_t off = 0;
      for (Detections& d : out.detections) {
        d.masks = probs.narrow(0, off, d.boxes.size(0)).contiguous();
        off += d.boxes.size(0);
      }
    } else {
      for (Detections& d : out.detections) d.masks = zeros({0, 1, 28, 28}, tessera::options(d.boxes.dtype(), d.boxes.device()));
    }
  }
  return out;
}

Tensor paste_masks_in_image(const Tensor& masks, const Tensor& boxes, Int2 image_size, int64_t padding) {
  TS_CHECK(masks.dim() == 4 && masks.size(1) == 1 && masks.size(2) == masks.size(3), "paste_masks_in_image: masks must be ",
           "[D, 1, M, M], got ", shape_str(masks.shape()));
  TS_CHECK(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == masks.size(0), "paste_masks_in_image: boxes must be [",
           masks.size(0), ", 4], got ", shape_str(boxes.shape()));
  NoGradGuard no_grad;
  const int64_t D = masks.size(0), M = masks.size(2), H = image_size.h, W = image_size.w;
  Tensor out = zeros({D, 1, H, W}, tessera::options(masks.dtype(), masks.device()));
  if (D == 0) return out;
  const Tensor padded = pad(masks, {padding, padding, padding, padding});
  // expand_boxes in float32 (the box dtype), then truncation toward zero as .to(torch.int64).
  const float scale = static_cast<float>(static_cast<double>(M + 2 * padding) / static_cast<double>(M));
  const std::vector<float> bv = boxes.to(kCPU).to(kFloat32).to_vector<float>();
  for (int64_t i = 0; i < D; ++i) {
    const float* b = &bv[static_cast<size_t>(i * 4)];
    float w_half = (b[2] - b[0]) * 0.5f, h_half = (b[3] - b[1]) * 0.5f;
    const float x_c = (b[2] + b[0]) * 0.5f, y_c = (b[3] + b[1]) * 0.5f;
    w_half *= scale;
    h_half *= scale;
    const int64_t x0 = static_cast<int64_t>(x_c - w_half), x1 = static_cast<int64_t>(x_c + w_half);
    const int64_t y0 = static_cast<int64_t>(y_c - h_half), y1 = static_cast<int64_t>(y_c + h_half);
    const int64_t w = std::max<int64_t>(x1 - x0 + 1, 1), h = std::max<int64_t>(y1 - y0 + 1, 1);
    const Tensor resized = interpolate(padded.narrow(0, i, 1), Int2{h, w}, std::nullopt, "bilinear", false).select(0, 0).select(0, 0);
    const int64_t cx0 = std::max<int64_t>(x0, 0), cx1 = std::min<int64_t>(x1 + 1, W);
    const int64_t cy0 = std::max<int64_t>(y0, 0), cy1 = std::min<int64_t>(y1 + 1, H);
    if (cx1 <= cx0 || cy1 <= cy0) continue;
    out.select(0, i).select(0, 0).narrow(0, cy0, cy1 - cy0).narrow(1, cx0, cx1 - cx0).copy_(
        resized.narrow(0, cy0 - y0, cy1 - cy0).narrow(1, cx0 - x0, cx1 - cx0));
  }
  return out;
}

}  // namespace tessera

// Mask R-CNN: transform, stages, post-processing.
#include "models/mask_rcnn.h"

#include <cmath>

#include "core/grad_mode.h"
#include "data/transforms.h"

namespace tessera {

Tensor MaskRCNNLosses::total() const {
  Tensor t = add(add(loss_classifier, loss_box_reg), add(loss_objectness, loss_rpn_box_reg));
  return loss_mask.defined() ? add(t, loss_mask) : t;
}

MaskRCNN::MaskRCNN(MaskRCNNOptions o, Generator* gen) : opts_(o) {
  TS_CHECK(o.min_size > 0 && o.max_size >= o.min_size, "MaskRCNN: need 0 < min_size <= max_size, got ", o.min_size, " and ",
           o.max_size);
  TS_CHECK(o.image_mean.size() == 3 && o.image_std.size() == 3, "MaskRCNN: image_mean and image_std need 3 values");
  TS_CHECK(o.anchor_sizes.size() == 5, "MaskRCNN: anchor_sizes needs one size per FPN level P2..P6 (5), got ",
           o.anchor_sizes.size());
  std::vector<std::vector<double>> sizes;
  for (double a : o.anchor_sizes) {
    TS_CHECK(a > 0 && std::isfinite(a), "MaskRCNN: anchor sizes must be positive, got ", a);
    sizes.push_back({a});
  }
  backbone_ = register_module("backbone", std::make_shared<BackboneWithFPN>(o.backbone, 256, gen));
  rpn_ = register_module("rpn", std::make_shared<RegionProposalNetwork>(
                                    256, AnchorGenerator(sizes, std::vector<std::vector<double>>(5, {0.5, 1.0, 2.0})), o.rpn, gen));
  roi_heads_ = register_module("roi_heads", std::make_shared<RoIHeads>(256, o.num_classes, o.roi_heads, gen));
}

MaskRCNN::Prepared MaskRCNN::prepare(const std::vector<Sample>& samples) const {
  TS_CHECK(!samples.empty(), "MaskRCNN: no images");
  Prepared p;
  std::vector<Tensor> images;
  const Device dev = device();
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    TS_CHECK(s.image.defined() && s.image.dim() == 3 && s.image.size(0) == 3, "MaskRCNN: image ", i, " must be [3, H, W], got ",
             s.image.defined() ? shape_str(s.image.shape()) : "undefined");
    TS_CHECK(s.image.size(1) > 0 && s.image.size(2) > 0, "MaskRCNN: image ", i, " is empty (", shape_str(s.image.shape()), ")");
    TS_CHECK(is_floating(s.image.dtype()), "MaskRCNN: image ", i, " must be floating point in [0, 1], got ",
             dtype_name(s.image.dtype()));
    Sample t = s;
    t.image = normalize_image(s.image.to(dev).to(kFloat32), opts_.image_mean, opts_.image_std);
    if (!t.boxes.defined()) t.boxes = zeros({0, 4});
    t = resize_for_detection(t, opts_.min_size, opts_.max_size);
    p.sizes.push_back(Int2{t.image.size(1), t.image.size(2)});
    images.push_back(t.image);
    t.boxes = t.boxes.to(dev).to(kFloat32);
    if (t.labels.defined()) t.labels = t.labels.to(dev);
    if (t.masks.defined()) t.masks = t.masks.to(dev);
    p.targets.push_back(std::move(t));
  }
  p.batch = batch_images(images, 32).images;
  return p;
}

std::vector<Detections> MaskRCNN::detect(const std::vector<Tensor>& images, MaskRCNNTrace* trace) {
  TS_CHECK(!is_training(), "MaskRCNN::detect: call eval() first (in training mode the model computes losses)");
  NoGradGuard no_grad;
  std::vector<Sample> samples(images.size());
  for (size_t i = 0; i < images.size(); ++i) samples[i].image = images[i];
  const Prepared p = prepare(samples);
  const std::vector<Tensor> features = backbone_->forward_levels(p.batch);
  const Int2 padded{p.batch.size(2), p.batch.size(3)};
  RPNOutput proposals = rpn_->forward(features, padded, p.sizes);
  RoIHeadsOutput heads = roi_heads_->forward(features, p.sizes, proposals.boxes);
  if (trace) {
    trace->batch = p.batch;
    trace->sizes = p.sizes;
    trace->features = features;
    trace->proposals = proposals.boxes;
    trace->raw = heads.detections;
  }
  std::vector<Detections> out;
  for (size_t i = 0; i < images.size(); ++i) {
    Detections d = heads.detections[i];
    const Int2 original{images[i].size(1), images[i].size(2)}, resized = p.sizes[i];
    d.boxes = resize_boxes(d.boxes, {resized.h, resized.w}, {original.h, original.w});
    if (d.masks.defined()) d.masks = paste_masks_in_image(d.masks, d.boxes, original);
    out.push_back(std::move(d));
  }
  return out;
}

MaskRCNNLosses MaskRCNN::losses(const std::vector<Sample>& samples, Generator* sampler_gen) {
  TS_CHECK(is_training(), "MaskRCNN::losses: call train() first");
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    TS_CHECK(s.boxes.defined() && s.boxes.dim() == 2 && s.boxes.size(1) == 4, "MaskRCNN: sample ", i, " (", s.name,
             ") needs boxes [G, 4]");
    TS_CHECK(s.labels.defined() && s.labels.dim() == 1 && s.labels.size(0) == s.boxes.size(0), "MaskRCNN: sample ", i, " (",
             s.name, ") needs one label per box");
    if (s.boxes.size(0) > 0) {
      const Tensor b = s.boxes.to(kCPU).to(kFloat64);
      TS_CHECK(amin(sub(b.select(1, 2), b.select(1, 0))).item<double>() > 0 && amin(sub(b.select(1, 3), b.select(1, 1))).item<double>() > 0,
               "MaskRCNN: sample ", i, " (", s.name, ") has a box with no positive width or height");
      const Tensor l = s.labels.to(kCPU).to(kInt64);
      TS_CHECK(amin(l).item<int64_t>() >= 1 && amax(l).item<int64_t>() < opts_.num_classes, "MaskRCNN: sample ", i, " (", s.name,
               ") has labels outside 1..", opts_.num_classes - 1);
    }
  }
  const Prepared p = prepare(samples);
  const std::vector<Tensor> features = backbone_->forward_levels(p.batch);
  const Int2 padded{p.batch.size(2), p.batch.size(3)};
  std::vector<Tensor> gt_boxes;
  for (const Sample& t : p.targets) gt_boxes.push_back(t.boxes);
  RPNOutput rpn = rpn_->forward(features, padded, p.sizes, &gt_boxes, sampler_gen);
  RoIHeadsOutput heads = roi_heads_->forward(features, p.sizes, rpn.boxes, &p.targets, sampler_gen);
  return MaskRCNNLosses{heads.loss_classifier, heads.loss_box_reg, heads.loss_mask, rpn.loss_objectness, rpn.loss_rpn_box_reg};
}

}  // namespace tessera

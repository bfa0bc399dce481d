// BoxCoder, composed of differentiable ops in torchvision's order of operations.
#include "models/box_coder.h"

namespace tessera {

BoxCoder::BoxCoder(std::array<double, 4> weights, double bbox_xform_clip) : weights_(weights), clip_(bbox_xform_clip) {
  for (double w : weights_) TS_CHECK(w > 0, "BoxCoder: weights must be positive");
}

Tensor BoxCoder::encode(const Tensor& reference_boxes, const Tensor& proposals) const {
  TS_CHECK(reference_boxes.defined() && proposals.defined() && reference_boxes.dim() == 2 && reference_boxes.size(1) == 4 &&
               proposals.shape() == reference_boxes.shape(),
           "BoxCoder::encode: expected two [N, 4] tensors of one shape");
  if (is_half(reference_boxes.dtype()) || is_half(proposals.dtype()))  // box coding is float32 (detectron2, torchvision)
    return encode(reference_boxes.to(is_half(reference_boxes.dtype()) ? kFloat32 : reference_boxes.dtype()),
                  proposals.to(is_half(proposals.dtype()) ? kFloat32 : proposals.dtype()));
  auto col = [](const Tensor& t, int64_t i) { return t.select(1, i); };
  Tensor ex_w = sub(col(proposals, 2), col(proposals, 0)), ex_h = sub(col(proposals, 3), col(proposals, 1));
  Tensor ex_cx = add(col(proposals, 0), mul(ex_w, 0.5)), ex_cy = add(col(proposals, 1), mul(ex_h, 0.5));
  Tensor gt_w = sub(col(reference_boxes, 2), col(reference_boxes, 0)), gt_h = sub(col(reference_boxes, 3), col(reference_boxes, 1));
  Tensor gt_cx = add(col(reference_boxes, 0), mul(gt_w, 0.5)), gt_cy = add(col(reference_boxes, 1), mul(gt_h, 0.5));
  Tensor dx = div(mul(sub(gt_cx, ex_cx), weights_[0]), ex_w);
  Tensor dy = div(mul(sub(gt_cy, ex_cy), weights_[1]), ex_h);
  Tensor dw = mul(log(div(gt_w, ex_w)), weights_[2]);
  Tensor dh = mul(log(div(gt_h, ex_h)), weights_[3]);
  return stack({dx, dy, dw, dh}, 1);
}

Tensor BoxCoder::decode(const Tensor& rel_codes, const Tensor& boxes_in) const {
  TS_CHECK(rel_codes.defined() && rel_codes.dim() == 2 && rel_codes.size(1) % 4 == 0, "BoxCoder::decode: codes must be [N, 4k]");
  TS_CHECK(boxes_in.defined() && boxes_in.dim() == 2 && boxes_in.size(1) == 4 && boxes_in.size(0) == rel_codes.size(0),
           "BoxCoder::decode: boxes must be [", rel_codes.size(0), ", 4], got ",
           boxes_in.defined() ? shape_str(boxes_in.shape()) : "undefined");
  if (is_half(rel_codes.dtype())) return decode(rel_codes.to(kFloat32), boxes_in);  // float32, as detectron2 forces it
  Tensor boxes = boxes_in.to(rel_codes.dtype());
  Tensor widths = sub(boxes.select(1, 2), boxes.select(1, 0)).unsqueeze(1);
  Tensor heights = sub(boxes.select(1, 3), boxes.select(1, 1)).unsqueeze(1);
  Tensor ctr_x = add(boxes.select(1, 0).unsqueeze(1), mul(widths, 0.5));
  Tensor ctr_y = add(boxes.select(1, 1).unsqueeze(1), mul(heights, 0.5));
  const int64_t n = rel_codes.size(1);
  Tensor dx = div(rel_codes.slice(1, 0, n, 4), weights_[0]);
  Tensor dy = div(rel_codes.slice(1, 1, n, 4), weights_[1]);
  Tensor dw = clamp_max(div(rel_codes.slice(1, 2, n, 4), weights_[2]), clip_);
  Tensor dh = clamp_max(div(rel_codes.slice(1, 3, n, 4), weights_[3]), clip_);
  Tensor pred_cx = add(mul(dx, widths), ctr_x), pred_cy = add(mul(dy, heights), ctr_y);
  Tensor half_w = mul(mul(exp(dw), widths), 0.5), half_h = mul(mul(exp(dh), heights), 0.5);
  return stack({sub(pred_cx, half_w), sub(pred_cy, half_h), add(pred_cx, half_w), add(pred_cy, half_h)}, 2).flatten(1);
}

}  // namespace tessera

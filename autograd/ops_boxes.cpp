// Box operations and NMS, as torchvision.ops.
#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "kernels/nms.h"

#include <map>

namespace tessera {

namespace {

void check_boxes(const char* op, const Tensor& boxes) {
  TS_CHECK(boxes.defined() && boxes.dim() == 2 && boxes.size(1) == 4, op, ": boxes must be [N, 4], got ",
           boxes.defined() ? shape_str(boxes.shape()) : "undefined");
  detail::check_floating(op, boxes, "boxes");
}

}  // namespace

Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold) {
  check_boxes("nms", boxes);
  TS_CHECK(scores.defined() && scores.dim() == 1 && scores.size(0) == boxes.size(0), "nms: scores must be [",
           boxes.size(0), "], got ", scores.defined() ? shape_str(scores.shape()) : "undefined");
  TS_CHECK(scores.device() == boxes.device(), "nms: scores are on ", scores.device(), " but boxes on ", boxes.device());
  TS_CHECK(iou_threshold >= 0.0 && iou_threshold <= 1.0, "nms: iou_threshold must be in [0, 1], got ", iou_threshold);
  if (is_half(boxes.dtype()) || is_half(scores.dtype()))  // always in float32, as torchvision's autocast runs it
    return nms(detail::widen_half(boxes), detail::widen_half(scores), iou_threshold);
  NoGradGuard no_grad;
  Tensor order = argsort(scores, 0, true);
  Tensor sorted = raw::contiguous(index_select(boxes, 0, order));
  return nms_sorted_kernel(sorted, raw::contiguous(order), iou_threshold);
}

Tensor batched_nms(const Tensor& boxes, const Tensor& scores, const Tensor& idxs, double iou_threshold) {
  check_boxes("batched_nms", boxes);
  TS_CHECK(idxs.defined() && idxs.dim() == 1 && idxs.size(0) == boxes.size(0) && !is_floating(idxs.dtype()),
           "batched_nms: idxs must be an integer tensor of shape [", boxes.size(0), "]");
  TS_CHECK(idxs.device() == boxes.device(), "batched_nms: idxs are on ", idxs.device(), " but boxes on ", boxes.device());
  if (boxes.size(0) == 0) return raw::empty({0}, DType::Int64, boxes.device());
  NoGradGuard no_grad;
  // torchvision's rule, so that results match it to the last box: above 1000 boxes (5000 on CUDA)
  // one NMS per category; below, one NMS with each category offset by more than the largest
  // coordinate (the offsets round coordinates slightly, so the two can differ at the threshold).
  if (boxes.numel() <= (boxes.device().is_cuda() ? 20000 : 4000)) {
    Tensor offsets = mul(idxs.to(boxes.dtype()), add(max(boxes), 1.0));
    return nms(add(boxes, offsets.unsqueeze(1)), scores, iou_threshold);
  }
  const std::vector<int64_t> ids = idxs.to(kCPU).to(kInt64).to_vector<int64_t>();
  std::map<int64_t, std::vector<int64_t>> members;
  for (size_t i = 0; i < ids.size(); ++i) members[ids[i]].push_back(static_cast<int64_t>(i));
  std::vector<Tensor> kept;
  for (const auto& [id, rows] : members) {
    Tensor index = from_vector(rows, {static_cast<int64_t>(rows.size())}, boxes.device());
    Tensor k = nms(index_select(boxes, 0, index), index_select(scores, 0, index), iou_threshold);
    kept.push_back(index_select(index, 0, k));
  }
  // Ascending index order (torch.where on the keep mask), then by decreasing score.
  Tensor keep = sort(cat(kept), 0, false).first;
  return index_select(keep, 0, argsort(index_select(scores, 0, keep), 0, true));
}

Tensor box_area(const Tensor& boxes) {
  check_boxes("box_area", boxes);
  return mul(sub(boxes.select(1, 2), boxes.select(1, 0)), sub(boxes.select(1, 3), boxes.select(1, 1)));
}

Tensor box_iou(const Tensor& boxes1, const Tensor& boxes2) {
  check_boxes("box_iou", boxes1);
  check_boxes("box_iou", boxes2);
  Tensor area1 = box_area(boxes1), area2 = box_area(boxes2);
  Tensor a = boxes1.unsqueeze(1);  // [N, 1, 4]
  Tensor lt = maximum(a.narrow(2, 0, 2), boxes2.narrow(1, 0, 2));  // [N, M, 2]
  Tensor rb = minimum(a.narrow(2, 2, 2), boxes2.narrow(1, 2, 2));
  Tensor wh = clamp_min(sub(rb, lt), 0.0);
  Tensor inter = mul(wh.select(2, 0), wh.select(2, 1));
  Tensor uni = sub(add(area1.unsqueeze(1), area2), inter);
  return div(inter, uni);
}

Tensor clip_boxes_to_image(const Tensor& boxes, Int2 image_size) {
  TS_CHECK(boxes.defined() && boxes.dim() >= 1 && boxes.size(-1) % 2 == 0, "clip_boxes_to_image: boxes must have an even ",
           "last dimension (x, y pairs), got ", boxes.defined() ? shape_str(boxes.shape()) : "undefined");
  // torchvision: x = boxes[..., 0::2].clamp(0, width), y = boxes[..., 1::2].clamp(0, height).
  Tensor x = clamp(boxes.slice(-1, 0, boxes.size(-1), 2), 0.0, static_cast<double>(image_size.w));
  Tensor y = clamp(boxes.slice(-1, 1, boxes.size(-1), 2), 0.0, static_cast<double>(image_size.h));
  return stack({x, y}, boxes.dim()).reshape(boxes.shape());
}

Tensor remove_small_boxes(const Tensor& boxes, double min_size) {
  check_boxes("remove_small_boxes", boxes);
  NoGradGuard no_grad;
  Tensor ws = sub(boxes.select(1, 2), boxes.select(1, 0)), hs = sub(boxes.select(1, 3), boxes.select(1, 1));
  return nonzero(logical_and(ge(ws, min_size), ge(hs, min_size))).select(1, 0).contiguous();
}

}  // namespace tessera

// Non-maximum suppression with torchvision's rules: boxes (x1, y1, x2, y2) visited by decreasing
// score (ties: the lower index first, a stable sort), IoU = inter / (area_i + area_j - inter) in
// the boxes' precision, a box suppressed when IoU > threshold (so a NaN IoU of zero-area boxes
// suppresses nothing). The IoU is written once here. CPU: a greedy sweep over sorted, contiguous
// coordinates whose inner loop vectorises. CUDA: 64-box bitmask tiles over the upper triangle,
// then the greedy sweep on the device in one block (kernels/cuda/nms.cu).
#pragma once

#include "core/parallel.h"
#include "core/tensor.h"

namespace tessera {

template <class T>
TS_HD T box_iou_pair(T ax1, T ay1, T ax2, T ay2, T bx1, T by1, T bx2, T by2) {
  const T left = ax1 > bx1 ? ax1 : bx1, right = ax2 < bx2 ? ax2 : bx2;
  const T top = ay1 > by1 ? ay1 : by1, bottom = ay2 < by2 ? ay2 : by2;
  const T w = right - left > T(0) ? right - left : T(0);
  const T h = bottom - top > T(0) ? bottom - top : T(0);
  const T inter = w * h;
  const T area_a = (ax2 - ax1) * (ay2 - ay1), area_b = (bx2 - bx1) * (by2 - by1);
  return inter / (area_a + area_b - inter);
}

// ---- the bitmask algorithm's per-thread arithmetic (the GPU's; run on the CPU by
// nms_sorted_bitmask_cpu when cpu_per_element() is on, so that the tests execute it)
inline constexpr int kNmsTile = 64;

// Bits of the boxes `tile` (up to 64, x1 y1 x2 y2 each; `cols` of them) that box `a` suppresses,
// from column `start` on: bit j is set when IoU(a, tile[j]) > threshold. One GPU thread, one row.
template <class T>
TS_HD unsigned long long nms_suppression_bits(const T* a, const T* tile, int64_t start, int64_t cols, T threshold) {
  unsigned long long bits = 0;
  for (int64_t j = start; j < cols; ++j)
    if (box_iou_pair(a[0], a[1], a[2], a[3], tile[j * 4], tile[j * 4 + 1], tile[j * 4 + 2], tile[j * 4 + 3]) > threshold)
      bits |= 1ULL << j;
  return bits;
}

// Whether sorted box i has been removed, given the removed words (one bit per box).
TS_HD bool nms_is_removed(const unsigned long long* removed, int64_t i) {
  return ((removed[i / kNmsTile] >> (i % kNmsTile)) & 1ULL) != 0;
}

// The sweep's fold when box i is kept: its mask row removes what it suppresses, words b >= i's own.
TS_HD void nms_fold_row(unsigned long long* removed, const unsigned long long* row, int64_t b) { removed[b] |= row[b]; }

// boxes [n, 4] sorted by decreasing score (contiguous), order [n] the original indices.
// Returns the kept original indices (int64, on the boxes' device) in visiting order.
Tensor nms_sorted_kernel(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold);
Tensor nms_sorted_kernel_cpu(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold);
Tensor nms_sorted_bitmask_cpu(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold);
Tensor nms_sorted_kernel_cuda(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold);

}  // namespace tessera

// CPU NMS: a greedy sweep over sorted, contiguous coordinates. For each kept box, every later box
// is tested in a branch-free loop that the compiler vectorises (testing boxes that are already
// suppressed costs less than the branch would).
#include <algorithm>
#include <vector>

#include "core/dispatch.h"
#include "core/view.h"
#include "kernels/nms.h"

namespace tessera {

Tensor nms_sorted_kernel_cpu(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold) {
  const int64_t n = sorted_boxes.size(0);
  std::vector<int64_t> kept;
  dispatch_floating(sorted_boxes.dtype(), "nms", [&]<class T>() {
    const T* b = sorted_boxes.data<T>();
    std::vector<T> x1(n), y1(n), x2(n), y2(n);
    for (int64_t i = 0; i < n; ++i) {
      x1[i] = b[4 * i];
      y1[i] = b[4 * i + 1];
      x2[i] = b[4 * i + 2];
      y2[i] = b[4 * i + 3];
    }
    std::vector<unsigned char> suppressed(static_cast<size_t>(n), 0);
    const T thr = static_cast<T>(iou_threshold);
    const int64_t* ord = order.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      if (suppressed[i]) continue;
      kept.push_back(ord[i]);
      const T ax1 = x1[i], ay1 = y1[i], ax2 = x2[i], ay2 = y2[i];
      unsigned char* sup = suppressed.data();
      for (int64_t j = i + 1; j < n; ++j)
        sup[j] |= static_cast<unsigned char>(box_iou_pair(ax1, ay1, ax2, ay2, x1[j], y1[j], x2[j], y2[j]) > thr);
    }
  });
  return from_vector<int64_t>(kept, {static_cast<int64_t>(kept.size())});
}

// The GPU's algorithm on the CPU, thread by thread in order: every 64 x 64 tile of the upper
// triangle gives each of its rows a mask word, then the sweep keeps a box unless an earlier kept
// box's row removed it. Run when cpu_per_element() is on (tests), to execute the GPU's arithmetic.
Tensor nms_sorted_bitmask_cpu(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold) {
  const int64_t n = sorted_boxes.size(0), col_blocks = (n + kNmsTile - 1) / kNmsTile;
  std::vector<unsigned long long> mask(static_cast<size_t>(n * col_blocks), 0), removed(static_cast<size_t>(col_blocks), 0);
  dispatch_floating(sorted_boxes.dtype(), "nms", [&]<class T>() {
    const T* b = sorted_boxes.data<T>();
    for (int64_t row_block = 0; row_block < col_blocks; ++row_block)
      for (int64_t col_block = row_block; col_block < col_blocks; ++col_block) {
        const int64_t rows = std::min<int64_t>(kNmsTile, n - row_block * kNmsTile);
        const int64_t cols = std::min<int64_t>(kNmsTile, n - col_block * kNmsTile);
        for (int64_t t = 0; t < rows; ++t) {
          const int64_t i = row_block * kNmsTile + t;
          mask[static_cast<size_t>(i * col_blocks + col_block)] = nms_suppression_bits(
              b + i * 4, b + col_block * kNmsTile * 4, row_block == col_block ? t + 1 : 0, cols, static_cast<T>(iou_threshold));
        }
      }
  });
  std::vector<int64_t> kept;
  const int64_t* ord = order.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (nms_is_removed(removed.data(), i)) continue;
    kept.push_back(ord[i]);
    for (int64_t w = i / kNmsTile; w < col_blocks; ++w) nms_fold_row(removed.data(), mask.data() + i * col_blocks, w);
  }
  return from_vector<int64_t>(kept, {static_cast<int64_t>(kept.size())});
}

Tensor nms_sorted_kernel(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold) {
  if (sorted_boxes.size(0) == 0) return raw::empty({0}, DType::Int64, sorted_boxes.device());
  Tensor out;
  if (sorted_boxes.is_cuda()) TS_CUDA_CALL(out = nms_sorted_kernel_cuda(sorted_boxes, order, iou_threshold));
  else if (cpu_per_element()) out = nms_sorted_bitmask_cpu(sorted_boxes, order, iou_threshold);
  else out = nms_sorted_kernel_cpu(sorted_boxes, order, iou_threshold);
  return out;
}

}  // namespace tessera

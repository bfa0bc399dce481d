// CPU NMS: a greedy sweep over sorted, contiguous coordinates. For each kept box, every later box
// is tested in a branch-free loop that the compiler vectorises (testing boxes that are already
// suppressed costs less than the branch would).
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

Tensor nms_sorted_kernel(const Tensor& sorted_boxes, const Tensor& order, double iou_threshold) {
  if (sorted_boxes.size(0) == 0) return raw::empty({0}, DType::Int64, sorted_boxes.device());
  Tensor out;
  if (sorted_boxes.is_cuda()) TS_CUDA_CALL(out = nms_sorted_kernel_cuda(sorted_boxes, order, iou_threshold));
  else out = nms_sorted_kernel_cpu(sorted_boxes, order, iou_threshold);
  return out;
}

}  // namespace tessera

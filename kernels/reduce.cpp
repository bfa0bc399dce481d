// Reduction planning: any set of dims -> one contiguous [A, R, B] block, copying only when the
// reduced dims are not adjacent in a contiguous tensor.
#include "kernels/reduce.h"

#include "core/dispatch.h"
#include "core/view.h"

namespace tessera {

void reduce(ReduceOp op, const Tensor& x, const Shape& dims_in, const Tensor& values, const Tensor& indices) {
  const int64_t nd = x.dim();
  Shape dims = dims_in;
  if (dims.empty())
    for (int64_t d = 0; d < nd; ++d) dims.push_back(d);
  std::vector<bool> reduced(nd, false);
  for (int64_t d : dims) reduced[d] = true;

  int64_t A = 1, R = 1, B = 1;
  for (int64_t d = 0; d < nd; ++d)
    if (reduced[d]) R *= x.size(d);

  // The reduced dims (ignoring size-1 ones) must be one consecutive run in a contiguous tensor.
  int64_t first = -1, last = -1;
  bool adjacent = true;
  for (int64_t d = 0; d < nd; ++d) {
    if (!reduced[d] || x.size(d) == 1) continue;
    if (first < 0) first = d;
    else if (last != d - 1) {
      for (int64_t k = last + 1; k < d; ++k)
        if (x.size(k) != 1) adjacent = false;
    }
    last = d;
  }
  Tensor input;
  if (x.is_contiguous() && adjacent) {
    input = x;
    if (first >= 0) {
      for (int64_t d = 0; d < first; ++d) A *= x.size(d);
      for (int64_t d = last + 1; d < nd; ++d) B *= x.size(d);
    } else {
      A = x.numel() / std::max<int64_t>(R, 1);
    }
  } else {
    Shape order;
    for (int64_t d = 0; d < nd; ++d)
      if (!reduced[d]) order.push_back(d);
    for (int64_t d = 0; d < nd; ++d)
      if (reduced[d]) order.push_back(d);
    input = raw::contiguous(raw::permute(x, order));
    for (int64_t d = 0; d < nd; ++d)
      if (!reduced[d]) A *= x.size(d);
  }
  if (A * B == 0) return;
  if (x.is_cuda()) TS_CUDA_CALL(reduce_kernel_cuda(op, input, A, R, B, values, indices));
  else reduce_kernel_cpu(op, input, A, R, B, values, indices);
}

}  // namespace tessera

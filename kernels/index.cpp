// Routing of the indexing kernels.
#include "kernels/index.h"

#include "core/dispatch.h"

namespace tessera {

void index_select_kernel(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t D, int64_t inner) {
  if (out.numel() == 0) return;
  if (out.is_cuda()) TS_CUDA_CALL(index_select_kernel_cuda(out, x, index, outer, D, inner));
  else index_select_kernel_cpu(out, x, index, outer, D, inner);
}
void index_add_kernel(const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer, int64_t D, int64_t inner) {
  if (src.numel() == 0) return;
  if (out.is_cuda()) TS_CUDA_CALL(index_add_kernel_cuda(out, src, index, outer, D, inner));
  else index_add_kernel_cpu(out, src, index, outer, D, inner);
}
void gather_kernel(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  if (out.numel() == 0) return;
  if (out.is_cuda()) TS_CUDA_CALL(gather_kernel_cuda(out, x, dim, index));
  else gather_kernel_cpu(out, x, dim, index);
}
void scatter_add_kernel(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  if (index.numel() == 0) return;
  if (out.is_cuda()) TS_CUDA_CALL(scatter_add_kernel_cuda(out, dim, index, src));
  else scatter_add_kernel_cpu(out, dim, index, src);
}
void cumsum_kernel(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner) {
  if (y.numel() == 0) return;
  if (y.is_cuda()) TS_CUDA_CALL(cumsum_kernel_cuda(y, x, outer, D, inner));
  else cumsum_kernel_cpu(y, x, outer, D, inner);
}
Tensor nonzero_kernel(const Tensor& x) {
  Tensor out;
  if (x.is_cuda()) TS_CUDA_CALL(out = nonzero_kernel_cuda(x));
  else out = nonzero_kernel_cpu(x);
  return out;
}

}  // namespace tessera

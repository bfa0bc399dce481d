// Routing of the indexing kernels.
#include "kernels/index.h"

#include "core/dispatch.h"

namespace tessera {

namespace {
// The kernels skip an element whose index is outside its dimension and flag it (kernels/index.h).
// On the CPU the op layer has already checked the values, so a flag here is a caller's bug.
void raise_if_flagged(int flag) {
  TS_CHECK(flag == 0, cuda::device_error_op(static_cast<cuda::DeviceError>(flag)), ": index out of range");
}
[[maybe_unused]] int* error_word(const Tensor& t) { return cuda::device_error_word(t.device().index); }  // CUDA builds
}  // namespace

void index_select_kernel(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t D, int64_t inner) {
  if (out.numel() == 0) return;
  int flag = 0;
  if (out.is_cuda()) TS_CUDA_CALL(index_select_kernel_cuda(out, x, index, outer, D, inner, error_word(out)));
  else index_select_kernel_cpu(out, x, index, outer, D, inner, &flag);
  raise_if_flagged(flag);
}
void index_add_kernel(const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer, int64_t D, int64_t inner) {
  if (src.numel() == 0) return;
  int flag = 0;
  if (out.is_cuda()) TS_CUDA_CALL(index_add_kernel_cuda(out, src, index, outer, D, inner, error_word(out)));
  else index_add_kernel_cpu(out, src, index, outer, D, inner, &flag);
  raise_if_flagged(flag);
}
void gather_kernel(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  if (out.numel() == 0) return;
  int flag = 0;
  if (out.is_cuda()) TS_CUDA_CALL(gather_kernel_cuda(out, x, dim, index, error_word(out)));
  else gather_kernel_cpu(out, x, dim, index, &flag);
  raise_if_flagged(flag);
}
void scatter_add_kernel(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  if (index.numel() == 0) return;
  int flag = 0;
  if (out.is_cuda()) TS_CUDA_CALL(scatter_add_kernel_cuda(out, dim, index, src, error_word(out)));
  else scatter_add_kernel_cpu(out, dim, index, src, &flag);
  raise_if_flagged(flag);
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

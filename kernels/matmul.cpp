// Matmul routing and the layout test shared by the BLAS backends.
#include "kernels/matmul.h"

#include "core/dispatch.h"

namespace tessera {

bool blas_layout(const Tensor& t, MatrixLayout* layout) {
  const int64_t rows = t.size(1), cols = t.size(2);
  const int64_t s_row = t.stride(1), s_col = t.stride(2);
  layout->batch_stride = t.size(0) == 1 ? 0 : t.stride(0);
  if ((s_col == 1 || cols == 1) && s_row >= std::max<int64_t>(1, cols)) {
    layout->transposed = false;
    layout->ld = s_row;
    return true;
  }
  if ((s_row == 1 || rows == 1) && s_col >= std::max<int64_t>(1, rows)) {
    layout->transposed = true;
    layout->ld = s_col;
    return true;
  }
  if (rows == 1 && cols == 1) {
    layout->transposed = false;
    layout->ld = 1;
    return true;
  }
  return false;
}

void matmul_kernel(const Tensor& out, const Tensor& a, const Tensor& b) {
  if (out.numel() == 0) return;
  if (out.is_cuda()) TS_CUDA_CALL(matmul_kernel_cuda(out, a, b));
  else matmul_kernel_cpu(out, a, b);
}

}  // namespace tessera

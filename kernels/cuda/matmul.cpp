// CUDA matmul through cuBLAS (strided-batched GEMM; full float32, no TF32, as PyTorch's default).
// cuBLAS is column-major: a row-major C = A B is the column-major C^T = B^T A^T.
#include "core/cuda/cublas_lazy.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/view.h"
#include "kernels/matmul.h"

namespace tessera {

void matmul_kernel_cuda(const Tensor& out, const Tensor& a_in, const Tensor& b_in) {
  const int64_t batch = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  TS_CHECK(M < (int64_t{1} << 31) && N < (int64_t{1} << 31) && K < (int64_t{1} << 31) && batch < (int64_t{1} << 31),
           "matmul: dimensions beyond 2^31 are not supported by cuBLAS");
  if (K == 0) {
    raw::fill_(out, 0.0);
    return;
  }
  MatrixLayout la, lb;
  Tensor a = a_in, b = b_in;
  if (!blas_layout(a, &la)) {
    a = raw::contiguous(a);
    blas_layout(a, &la);
  }
  if (!blas_layout(b, &lb)) {
    b = raw::contiguous(b);
    blas_layout(b, &lb);
  }
  const int device = out.device().index;
  cuda::DeviceGuard guard(device);
  cublasHandle_t handle = cuda::cublas_handle(device);
  const cublasOperation_t op_b = lb.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = la.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int lda = static_cast<int>(std::max<int64_t>(la.ld, la.transposed ? M : K));
  const int ldb = static_cast<int>(std::max<int64_t>(lb.ld, lb.transposed ? K : N));
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  if (out.dtype() == DType::Float32) {
    const float alpha = 1.f, beta = 0.f;
    TS_CUBLAS_CHECK(cuda::cublas().sgemm_strided_batched(handle, op_b, op_a, m, n, k, &alpha, b.data<float>(), ldb,
                                              lb.batch_stride, a.data<float>(), lda, la.batch_stride, &beta,
                                              out.data<float>(), m, M * N, static_cast<int>(batch)));
  } else {
    TS_CHECK(out.dtype() == DType::Float64, "matmul: expected float32 or float64, got ", dtype_name(out.dtype()));
    const double alpha = 1.0, beta = 0.0;
    TS_CUBLAS_CHECK(cuda::cublas().dgemm_strided_batched(handle, op_b, op_a, m, n, k, &alpha, b.data<double>(), ldb,
                                              lb.batch_stride, a.data<double>(), lda, la.batch_stride, &beta,
                                              out.data<double>(), m, M * N, static_cast<int>(batch)));
  }
}

}  // namespace tessera

// CUDA matmul through cuBLAS (strided-batched GEMM): float32 in full float32 unless
// set_cuda_allow_tf32(true) (then TF32 tensor cores, PyTorch's allow_tf32), float64, and float16 /
// bfloat16 operands on the tensor cores with float32 compute (cublasGemmStridedBatchedEx).
// cuBLAS is column-major: a row-major C = A B is the column-major C^T = B^T A^T.
#include "core/cuda/cublas_lazy.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/view.h"
#include "kernels/conv_settings.h"
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
  const DType dt = out.dtype();
  if (dt == DType::BFloat16 || dt == DType::Float16 || (dt == DType::Float32 && cuda_allow_tf32())) {
    const cudaDataType t = dt == DType::BFloat16 ? CUDA_R_16BF : dt == DType::Float16 ? CUDA_R_16F : CUDA_R_32F;
    const cublasComputeType_t compute = dt == DType::Float32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const float alpha = 1.f, beta = 0.f;  // the compute type's scalars
    TS_CUBLAS_CHECK(cuda::cublas().gemm_strided_batched_ex(handle, op_b, op_a, m, n, k, &alpha, b.data_ptr(), t, ldb,
                                                           lb.batch_stride, a.data_ptr(), t, lda, la.batch_stride, &beta,
                                                           out.data_ptr(), t, m, M * N, static_cast<int>(batch), compute,
                                                           CUBLAS_GEMM_DEFAULT));
  } else if (dt == DType::Float32) {
    const float alpha = 1.f, beta = 0.f;
    TS_CUBLAS_CHECK(cuda::cublas().sgemm_strided_batched(handle, op_b, op_a, m, n, k, &alpha, b.data<float>(), ldb,
                                              lb.batch_stride, a.data<float>(), lda, la.batch_stride, &beta,
                                              out.data<float>(), m, M * N, static_cast<int>(batch)));
  } else {
    TS_CHECK(dt == DType::Float64, "matmul: expected a floating dtype, got ", dtype_name(dt));
    const double alpha = 1.0, beta = 0.0;
    TS_CUBLAS_CHECK(cuda::cublas().dgemm_strided_batched(handle, op_b, op_a, m, n, k, &alpha, b.data<double>(), ldb,
                                              lb.batch_stride, a.data<double>(), lda, la.batch_stride, &beta,
                                              out.data<double>(), m, M * N, static_cast<int>(batch)));
  }
}

}  // namespace tessera

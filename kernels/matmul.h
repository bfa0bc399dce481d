// Batched matrix products: out[b] = a[b] @ b[b]. OpenBLAS on the CPU, cuBLAS on CUDA; float32 and
// float64. The op layer (autograd/) resolves torch.matmul's 1-D and broadcasting rules and passes
// 3-D operands; a batch stride of 0 (a broadcast operand) is fine, and each matrix may be
// row-major or transposed (column-major) without a copy.
#pragma once

#include <string>

#include "core/tensor.h"

namespace tessera {

// How one operand's matrices are laid out for BLAS.
struct MatrixLayout {
  bool transposed = false;  // stored column-major: element (i, j) at i + j * ld
  int64_t ld = 0;           // leading dimension
  int64_t batch_stride = 0;
};

// The layout of the last two dims of a 3-D tensor if BLAS can read it as is.
bool blas_layout(const Tensor& t, MatrixLayout* layout);

// a: [batch, M, K], b: [batch, K, N], out: [batch, M, N] contiguous, all of one float dtype.
void matmul_kernel(const Tensor& out, const Tensor& a, const Tensor& b);
void matmul_kernel_cpu(const Tensor& out, const Tensor& a, const Tensor& b);
void matmul_kernel_cuda(const Tensor& out, const Tensor& a, const Tensor& b);
// The CPU GEMM in use, for benchmark reports: "OpenBLAS <kernel family>", plus the
// OPENBLAS_CORETYPE override when the environment sets one (it decides the kernels: on the
// project's AVX-512 machines, OPENBLAS_CORETYPE=Haswell halves the GEMM rate).
std::string cpu_blas_info();
// OpenBLAS picks its kernels when it loads, from the CPU model; one it does not know gets older
// ones (0.3.21, Debian 12's, runs its SSE3 "Prescott" kernels on family 6 model 207, Emerald Rapids:
// a 1024^3 SGEMM 4.8x slower than with its AVX-512 "SkylakeX" kernels). This returns the
// OPENBLAS_CORETYPE to set when its choice lacks the AVX2 / AVX-512 the CPU has ("" when it fits
// or the variable is set already). It can only take effect at the next program start.
std::string cpu_blas_suggested_coretype();
// Says so once on stderr when cpu_blas_suggested_coretype() is not empty; the CPU GEMMs call it.
void warn_if_cpu_blas_misdetected();

}  // namespace tessera

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
// The CPU GEMM in use, for benchmark reports and --verbose: "OpenBLAS <kernel family> kernels
// (<who chose them>), <library path>". The first call loads OpenBLAS (kernels/cpu/blas.cpp).
std::string cpu_blas_info();

}  // namespace tessera

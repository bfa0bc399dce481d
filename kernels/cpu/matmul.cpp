// CPU matmul through OpenBLAS (its OpenMP build shares tessera's thread pool).
#include <algorithm>
#include <vector>

#include "core/parallel.h"
#include "core/view.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/matmul.h"

namespace tessera {

namespace {

Tensor blas_ready(const Tensor& t, MatrixLayout* layout) {
  if (blas_layout(t, layout)) return t;
  Tensor c = raw::contiguous(t);
  blas_layout(c, layout);
  return c;
}

}  // namespace

void matmul_kernel_cpu(const Tensor& out, const Tensor& a_in, const Tensor& b_in) {
  const int64_t batch = out.size(0), M = out.size(1), N = out.size(2), K = a_in.size(2);
  TS_CHECK(M < (int64_t{1} << 31) && N < (int64_t{1} << 31) && K < (int64_t{1} << 31),
           "matmul: dimensions beyond 2^31 are not supported by BLAS");
  if (K == 0) {
    raw::fill_(out, 0.0);
    return;
  }
  MatrixLayout la, lb;
  Tensor a = blas_ready(a_in, &la), b = blas_ready(b_in, &lb);
  if (out.dtype() == DType::BFloat16) {  // tessera's bfloat16 GEMM, float32 sums, rounded once
    const bfloat16* pa = a.data<bfloat16>();
    const bfloat16* pb = b.data<bfloat16>();
    bfloat16* pc = out.data<bfloat16>();
    const int64_t lda = std::max<int64_t>(la.ld, la.transposed ? M : K), ldb = std::max<int64_t>(lb.ld, lb.transposed ? K : N);
    const bool per_thread = batch >= num_threads() && M * N * K <= 128 * 128 * 128;
    auto one = [&](int64_t i) {
      thread_local std::vector<float> acc;
      acc.resize(static_cast<size_t>(M * N));
      const bfloat16* ai = pa + i * la.batch_stride;
      const bfloat16* bi = pb + i * lb.batch_stride;
      if (per_thread) cpu::gemm_bf16(la.transposed, lb.transposed, M, N, K, ai, lda, bi, ldb, false, acc.data(), N);
      else cpu::gemm_bf16_parallel(la.transposed, lb.transposed, M, N, K, ai, lda, bi, ldb, false, acc.data(), N);
      bfloat16* ci = pc + i * M * N;
      const float* src = acc.data();
      if (per_thread) {
        for (int64_t j = 0; j < M * N; ++j) ci[j] = bfloat16(src[j]);
      } else {
        parallel_for(M * N, [=](int64_t j) { ci[j] = bfloat16(src[j]); });
      }
    };
    if (per_thread) parallel_for(batch, one, 1);
    else
      for (int64_t i = 0; i < batch; ++i) one(i);
    return;
  }
  dispatch_floating(out.dtype(), "matmul", [&]<class T>() {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = out.data<T>();
    const int64_t lda = std::max<int64_t>(la.ld, la.transposed ? M : K), ldb = std::max<int64_t>(lb.ld, lb.transposed ? K : N);
    auto one = [&](int64_t i) {
      blas::gemm<T>(la.transposed, lb.transposed, M, N, K, T(1), pa + i * la.batch_stride, lda, pb + i * lb.batch_stride, ldb,
                    T(0), pc + i * M * N, N);
    };
    // Many small products: one per thread (OpenBLAS runs single-threaded inside a parallel
    // region). Large ones: one after another, each using every thread.
    if (batch >= num_threads() && M * N * K <= 128 * 128 * 128) {
      parallel_for(batch, one, 1);
    } else {
      for (int64_t i = 0; i < batch; ++i) one(i);
    }
  });
}

}  // namespace tessera

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
  cpu::dispatch_gemm_types(out.dtype(), "matmul", [&]<class T>() {
    using F = opmath_t<T>;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = out.data<T>();
    const int64_t lda = std::max<int64_t>(la.ld, la.transposed ? M : K), ldb = std::max<int64_t>(lb.ld, lb.transposed ? K : N);
    auto one = [&](int64_t i) {
      const T* ai = pa + i * la.batch_stride;
      const T* bi = pb + i * lb.batch_stride;
      T* ci = pc + i * M * N;
      if constexpr (std::is_same_v<T, F>) {
        cpu::gemm_opmath<T>(la.transposed, lb.transposed, M, N, K, ai, lda, bi, ldb, false, ci, N);
      } else {  // bfloat16: float32 sums, rounded once
        thread_local std::vector<F> sums;
        sums.resize(static_cast<size_t>(M * N));
        cpu::gemm_opmath<T>(la.transposed, lb.transposed, M, N, K, ai, lda, bi, ldb, false, sums.data(), N);
        cpu::store_rounded(ci, sums.data(), M * N, false);
      }
    };
    // Many small products: one per thread (the GEMMs run single-threaded inside a parallel
    // region). Large ones: one after another, each using every thread.
    if (batch >= num_threads() && M * N * K <= 128 * 128 * 128) {
      parallel_for(batch, one, 1);
    } else {
      for (int64_t i = 0; i < batch; ++i) one(i);
    }
  });
}

}  // namespace tessera

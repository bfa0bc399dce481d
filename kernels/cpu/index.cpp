// CPU launches of the indexing kernels, and nonzero (count per chunk, then fill in order).
#include <vector>

#include "core/view.h"
#include "kernels/index.h"

namespace tessera {

void index_select_kernel_cpu(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t D, int64_t inner,
                             int* error) {
  index_select_impl(CpuLaunch{}, out, x, index, outer, D, inner, error);
}
void index_add_kernel_cpu(const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer, int64_t D, int64_t inner,
                          int* error) {
  index_add_impl(CpuLaunch{}, out, src, index, outer, D, inner, error);
}
void gather_kernel_cpu(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index, int* error) {
  gather_impl(CpuLaunch{}, out, x, dim, index, error);
}
void scatter_add_kernel_cpu(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, int* error) {
  scatter_add_impl(CpuLaunch{}, out, dim, index, src, error);
}
void cumsum_kernel_cpu(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner) {
  cumsum_impl<false>(CpuLaunch{}, y, x, outer, D, inner);
}

// nonzero as the GPU does it (cpu_per_element(), for the tests): the flag and write functors, with
// a sequential inclusive prefix count between them where the GPU runs CUB's scan.
Tensor nonzero_by_flags_cpu(const Tensor& x) {
  const int64_t n = x.numel(), nd = x.dim();
  Tensor out;
  dispatch_all_with_half(x.dtype(), "nonzero", [&]<class T>() {
    std::vector<int64_t> positions(static_cast<size_t>(n));
    CpuLaunch{}(n, NonzeroFlagKernel<T>{x.data<T>(), positions.data()});
    for (int64_t i = 1; i < n; ++i) positions[i] += positions[i - 1];
    out = raw::empty({n == 0 ? 0 : positions[n - 1], nd}, DType::Int64, kCPU);
    NonzeroWriteKernel<T> k{x.data<T>(), positions.data(), out.data<int64_t>(), nd, {}};
    for (int64_t d = 0; d < nd; ++d) k.shape[d] = x.size(d);
    CpuLaunch{}(n, k);
  });
  return out;
}

Tensor nonzero_kernel_cpu(const Tensor& x_in) {
  Tensor x = raw::contiguous(x_in);
  TS_CHECK(x.dim() <= kMaxDims, "nonzero: at most ", kMaxDims, " dimensions");
  if (cpu_per_element()) return nonzero_by_flags_cpu(x);
  const int64_t n = x.numel(), nd = x.dim();
  const int64_t chunk = 1 << 16;
  const int64_t chunks = (n + chunk - 1) / chunk;
  std::vector<int64_t> counts(static_cast<size_t>(chunks) + 1, 0);
  Tensor out;
  dispatch_all_with_half(x.dtype(), "nonzero", [&]<class T>() {
    const T* p = x.data<T>();
    parallel_for(chunks, [&](int64_t c) {
      int64_t k = 0;
      for (int64_t i = c * chunk, e = std::min(n, i + chunk); i < e; ++i) k += p[i] != T(0);
      counts[static_cast<size_t>(c) + 1] = k;
    }, 1);
    for (int64_t c = 0; c < chunks; ++c) counts[c + 1] += counts[c];
    out = raw::empty({counts[chunks], nd}, DType::Int64, kCPU);
    int64_t* o = out.data<int64_t>();
    const Shape shape = x.shape();
    parallel_for(chunks, [&](int64_t c) {
      int64_t row = counts[c];
      for (int64_t i = c * chunk, e = std::min(n, i + chunk); i < e; ++i) {
        if (!(p[i] != T(0))) continue;
        int64_t rem = i;
        for (int64_t d = nd - 1; d >= 0; --d) {
          o[row * nd + d] = rem % shape[d];
          rem /= shape[d];
        }
        ++row;
      }
    }, 1);
  });
  return out;
}

}  // namespace tessera

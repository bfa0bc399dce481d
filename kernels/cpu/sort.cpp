// CPU sort: a stable index sort per row (rows in parallel), NaN as the largest value.
#include <algorithm>
#include <numeric>
#include <vector>

#include "core/parallel.h"
#include "kernels/math.h"
#include "kernels/sort.h"

namespace tessera {

void sort_kernel_cpu(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending) {
  dispatch_numeric(x.dtype(), "sort", [&]<class T>() {
    const T* px = x.data<T>();
    T* pv = values.data<T>();
    int64_t* pi = indices.data<int64_t>();
    // a < b in sort order: NaN is larger than everything, NaNs are equal to each other.
    auto less = [](T a, T b) {
      if (math::isnan(a)) return false;
      if (math::isnan(b)) return true;
      return a < b;
    };
    parallel_for(rows, [&](int64_t r) {
      const T* row = px + r * D;
      int64_t* idx = pi + r * D;
      std::iota(idx, idx + D, int64_t{0});
      if (descending) std::stable_sort(idx, idx + D, [&](int64_t a, int64_t b) { return less(row[b], row[a]); });
      else std::stable_sort(idx, idx + D, [&](int64_t a, int64_t b) { return less(row[a], row[b]); });
      for (int64_t d = 0; d < D; ++d) pv[r * D + d] = row[idx[d]];
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(D, 1)));
  });
}

void sort_by_keys_cpu(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending) {
  dispatch_numeric(x.dtype(), "sort", [&]<class T>() {
    using U = SortKeyT<T>;
    std::vector<U> keys(static_cast<size_t>(rows * D));
    CpuLaunch{}(rows * D, SortKeyKernel<T>{x.data<T>(), keys.data()});
    int64_t* pi = indices.data<int64_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const U* k = keys.data() + r * D;
      int64_t* idx = pi + r * D;
      std::iota(idx, idx + D, int64_t{0});
      if (descending) std::stable_sort(idx, idx + D, [&](int64_t a, int64_t b) { return k[a] > k[b]; });
      else std::stable_sort(idx, idx + D, [&](int64_t a, int64_t b) { return k[a] < k[b]; });
    }
    CpuLaunch{}(rows * D, SortGatherKernel<T>{x.data<T>(), pi, values.data<T>(), D});
  });
}

}  // namespace tessera

// Stable sort along the last dim of a contiguous [rows, D] block: values and int64 indices.
// NaN sorts as the largest value, -0 and +0 are equal. CPU: std::stable_sort per row; CUDA: CUB
// radix sort (stable), segmented when there are several rows, of the keys that sort_key encodes,
// then a gather of the values. CUDA-only in kernels/cuda/sort.cu: the radix sort itself.
#pragma once

#include <cstring>
#include <type_traits>

#include "core/parallel.h"
#include "core/tensor.h"

namespace tessera {

// The unsigned radix key of each sortable type.
template <class T>
using SortKeyT = std::conditional_t<sizeof(T) == 8, unsigned long long,
                                    std::conditional_t<sizeof(T) == 4, unsigned int, unsigned char>>;

// An unsigned integer whose order is the sort order: for floats -inf < ... < -0 == +0 < ... < +inf
// < NaN (every NaN the same key, so NaNs keep their index order, as on the CPU); for signed
// integers the two's-complement order. Radix-sorting these keys (stably) is the CPU's stable sort.
template <class T>
TS_HD SortKeyT<T> sort_key(T v) {
  using U = SortKeyT<T>;
  constexpr U kSign = U(1) << (sizeof(U) * 8 - 1);
  if constexpr (std::is_floating_point_v<T>) {
    if (v != v) return ~U(0);
    if (v == T(0)) v = T(0);  // -0 -> +0
    U u;
    memcpy(&u, &v, sizeof(U));
    return (u & kSign) ? static_cast<U>(~u) : static_cast<U>(u | kSign);
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<U>(static_cast<U>(v) ^ kSign);
  } else {
    return static_cast<U>(v);
  }
}

// keys[i] = sort_key(x[i]).
template <class T>
struct SortKeyKernel {
  const T* x;
  SortKeyT<T>* keys;
  TS_HD void operator()(int64_t i) const { keys[i] = sort_key(x[i]); }
};

// After the keys are sorted with their positions in the row: values[i] = x[row, indices[i]].
template <class T>
struct SortGatherKernel {
  const T* x;
  const int64_t* indices;
  T* values;
  int64_t D;
  TS_HD void operator()(int64_t i) const { values[i] = x[(i / D) * D + indices[i]]; }
};

void sort_kernel(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending);
void sort_kernel_cpu(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending);
// The GPU's way on the CPU (run under cpu_per_element(), for the tests): keys, a stable sort of the
// keys, the gather.
void sort_by_keys_cpu(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending);
void sort_kernel_cuda(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending);

}  // namespace tessera

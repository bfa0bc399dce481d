// StridedIndex: linear element index -> element offsets of N operands of one shape, each with its
// own strides (0 on broadcast dimensions). Shared by CPU and CUDA kernels; dims are coalesced.
#pragma once

#include <array>
#include <cstdint>

#include "core/parallel.h"
#include "core/tensor.h"

namespace tessera {

inline constexpr int kMaxDims = 12;

template <int N>
struct StridedIndex {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims][N] = {};

  TS_HD void offsets(int64_t linear, int64_t (&off)[N]) const {
    for (int n = 0; n < N; ++n) off[n] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t size = sizes[d];
      const int64_t idx = linear % size;
      linear /= size;
      for (int n = 0; n < N; ++n) off[n] += idx * strides[d][n];
    }
  }
};

// Visits [begin, end) as runs along the innermost dimension: f(offsets, count) for each run, where
// element j of the run sits at offsets[n] + j * inner_stride(n). One division per run, not per
// element: what the CPU `range` methods use.
template <int N, class F>
void for_each_run(const StridedIndex<N>& index, int64_t begin, int64_t end, F&& f) {
  if (index.ndim == 0) {
    int64_t off[N] = {};
    f(off, end - begin);
    return;
  }
  const int64_t inner = index.sizes[index.ndim - 1];
  for (int64_t i = begin; i < end;) {
    int64_t off[N];
    index.offsets(i, off);
    const int64_t left_in_row = inner - i % inner;
    const int64_t count = left_in_row < end - i ? left_in_row : end - i;
    f(off, count);
    i += count;
  }
}

template <int N>
TS_HD int64_t inner_stride(const StridedIndex<N>& index, int n) {
  return index.ndim == 0 ? 0 : index.strides[index.ndim - 1][n];
}

// Builds the index for `shape` and the per-operand strides (each of length shape.size()),
// dropping size-1 dimensions and merging neighbours that are contiguous for every operand.
template <int N>
StridedIndex<N> make_strided_index(const Shape& shape, const std::array<Shape, N>& strides) {
  StridedIndex<N> r;
  // Walk from the innermost dimension outwards, merging when possible.
  int64_t sizes[64];
  int64_t st[64][N];
  int nd = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (nd > 0) {
      bool mergeable = true;
      for (int n = 0; n < N; ++n)
        if (strides[n][d] != st[nd - 1][n] * sizes[nd - 1]) mergeable = false;
      if (mergeable) {
        sizes[nd - 1] *= shape[d];
        continue;
      }
    }
    TS_CHECK(nd < 64, "too many dimensions");
    sizes[nd] = shape[d];
    for (int n = 0; n < N; ++n) st[nd][n] = strides[n][d];
    ++nd;
  }
  TS_CHECK(nd <= kMaxDims, "kernels support at most ", kMaxDims, " non-mergeable dimensions, got ", nd,
           " for shape ", shape_str(shape));
  r.ndim = nd;
  for (int i = 0; i < nd; ++i) {  // stored outermost first
    r.sizes[i] = sizes[nd - 1 - i];
    for (int n = 0; n < N; ++n) r.strides[i][n] = st[nd - 1 - i][n];
  }
  return r;
}

// Strides of `t` viewed at the broadcast shape `shape` (0 where t has size 1 or no dimension).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

}  // namespace tessera

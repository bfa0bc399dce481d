// CPU traversals for reductions over a contiguous [A, R, B] block.
//   B == 1: rows. Many rows: a thread per row range. Few rows: each thread folds a slice of R,
//           and the partial results are combined in order (so the result does not depend on the
//           thread count only up to float rounding of the partial sums).
//   B > 1:  tiles of 256 columns; the inner loop runs along contiguous b, so it vectorises.
#include <vector>

#include "kernels/reduce.h"

namespace tessera {

namespace {

// Folds row[r0, r1) with eight independent accumulators (then combined in lane order), so that a
// sum is not one long dependency chain and the compiler can vectorise it.
template <class In, class Op>
typename Op::acc_t fold(const In* row, int64_t r0, int64_t r1, const Op& op) {
  using Acc = typename Op::acc_t;
  constexpr int kLanes = 8;
  Acc lanes[kLanes];
  for (int k = 0; k < kLanes; ++k) lanes[k] = op.identity();
  int64_t r = r0;
  for (; r + kLanes <= r1; r += kLanes)
    for (int k = 0; k < kLanes; ++k) lanes[k] = op.step(lanes[k], row[r + k], r + k);
  Acc acc = op.identity();
  for (int k = 0; k < kLanes; ++k) acc = op.combine(acc, lanes[k]);
  for (; r < r1; ++r) acc = op.step(acc, row[r], r);
  return acc;
}

template <class In, class Op>
void reduce_rows(const In* x, int64_t A, int64_t R, const Op& op) {
  using Acc = typename Op::acc_t;
  const int threads = num_threads();
  if (A >= threads || R * A < kParallelGrain) {
    parallel_chunks(A, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(R, 1)), [&](int64_t a0, int64_t a1) {
      for (int64_t a = a0; a < a1; ++a) op.write(fold(x + a * R, 0, R, op), a);
    });
    return;
  }
  // Few long rows: split R into one slice per thread.
  const int64_t slices = threads;
  const int64_t per = (R + slices - 1) / slices;
  std::vector<Acc> partial(static_cast<size_t>(A * slices));
  parallel_chunks(slices * A, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t a = s / slices, k = s % slices;
      const int64_t r0 = k * per, r1 = std::min(R, r0 + per);
      partial[static_cast<size_t>(s)] = fold(x + a * R, r0, r1, op);
    }
  });
  for (int64_t a = 0; a < A; ++a) {
    Acc acc = op.identity();
    for (int64_t k = 0; k < slices; ++k) acc = op.combine(acc, partial[static_cast<size_t>(a * slices + k)]);
    op.write(acc, a);
  }
}

template <class In, class Op>
void reduce_columns(const In* x, int64_t A, int64_t R, int64_t B, const Op& op) {
  using Acc = typename Op::acc_t;
  constexpr int64_t kTile = 256;
  const int64_t tiles_per_a = (B + kTile - 1) / kTile;
  const int64_t work_per_tile = R * std::min(B, kTile);
  parallel_chunks(A * tiles_per_a, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work_per_tile, 1)),
                  [&](int64_t t0, int64_t t1) {
                    Acc acc[kTile];
                    for (int64_t t = t0; t < t1; ++t) {
                      const int64_t a = t / tiles_per_a, b0 = (t % tiles_per_a) * kTile;
                      const int64_t nb = std::min(kTile, B - b0);
                      for (int64_t j = 0; j < nb; ++j) acc[j] = op.identity();
                      const In* base = x + a * R * B + b0;
                      for (int64_t r = 0; r < R; ++r) {
                        const In* row = base + r * B;
                        for (int64_t j = 0; j < nb; ++j) acc[j] = op.step(acc[j], row[j], r);
                      }
                      for (int64_t j = 0; j < nb; ++j) op.write(acc[j], a * B + b0 + j);
                    }
                  });
}

}  // namespace

void reduce_kernel_cpu(ReduceOp op, const Tensor& x, int64_t A, int64_t R, int64_t B, const Tensor& values,
                       const Tensor& indices) {
  reduce_dispatch<false>(op, x, R, values, indices, [&]<class In>(const auto& reduce_op) {
    const In* data = x.data<In>();
    if (B == 1) reduce_rows(data, A, R, reduce_op);
    else reduce_columns(data, A, R, B, reduce_op);
  });
}

}  // namespace tessera

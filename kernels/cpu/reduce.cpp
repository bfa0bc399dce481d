// CPU traversals for reductions over a contiguous [A, R, B] block.
//   B == 1: rows. Many rows: a thread per row range. Few long rows: slices of 2^15 values go to
//           the threads as they come free, and the partial results are combined in order (so the
//           result does not depend on the thread count).
//   B > 1:  tiles of 256 columns; the inner loop runs along contiguous b, so it vectorises.
// Arg ops over rows take two passes that both vectorise: the extreme value (NaN first), then the
// first position holding it. Reading the row twice costs less than one pass of (value, index)
// pairs, which does not vectorise (argmax of 2^24 floats: 15 ms in one pass).
#include <limits>
#include <vector>

#include "kernels/reduce.h"

namespace tessera {

namespace {

// Asks for the cache lines 8 KiB beyond the `bytes` at p. The hardware's stream prefetcher alone
// kept one core at 12 GB/s on an AMD EPYC (sum of 2^24 floats, 5.3 ms on one thread, 3.1 ms on
// two; PyTorch 4.4 and 2.4): with this, 4.8 and 2.5 ms.
template <class T>
inline void prefetch_ahead(const T* p, size_t bytes) {
  constexpr size_t kAhead = 8192, kLine = 64;
  const char* c = reinterpret_cast<const char*>(p) + kAhead;
  for (size_t b = 0; b < bytes; b += kLine) __builtin_prefetch(c + b);
}

// Folds row[r0, r1) with independent accumulators (then combined in lane order), so that a sum is
// not one long dependency chain and the compiler can vectorise it: 32 lanes of a number are four
// AVX-512 registers of doubles (vaddpd's latency is 4 cycles: one register alone held a float sum
// to half the memory bandwidth).
template <class Op>
concept PlainSum = Op::kPlainSum;

// A float32 sum in double: each of 32 lanes adds four values apart by 32 in float32, pairwise,
// then widens. Converting every value to double held the sum to half the speed of a float32 loop
// once the data came from the caches (two Zen 4 cores, 8 MiB from L3: 95 us vs 47 for a float32 loop; vcvtps2pd's rate);
// one conversion per four values: 62 us (a plain float32 loop: 47). Each value is rounded at most twice
// (to within 2^-23 of the four's magnitudes) before the double sum.
inline double fold_float_sum(const float* row, int64_t r0, int64_t r1) {
  constexpr int kLanes = 32;
  double lanes[kLanes];
  for (int k = 0; k < kLanes; ++k) lanes[k] = 0;
  int64_t r = r0;
  for (; r + 4 * kLanes <= r1; r += 4 * kLanes) {
    const float* p = row + r;
    prefetch_ahead(p, 4 * kLanes * sizeof(float));
    for (int k = 0; k < kLanes; ++k)
      lanes[k] += static_cast<double>((p[k] + p[k + kLanes]) + (p[k + 2 * kLanes] + p[k + 3 * kLanes]));
  }
  double acc = 0;
  for (int k = 0; k < kLanes; ++k) acc += lanes[k];
  for (; r < r1; ++r) acc += static_cast<double>(row[r]);
  return acc;
}

template <class Op>
concept Extremum = Op::kExtremum;

// The float32 max (min) of a run: 64 lanes of plain vmaxps (vminps) and, beside them, whether a
// NaN was seen; a NaN anywhere makes the result NaN, as math::maximum does value by value. The
// select of a NaN-propagating maximum chained a compare and a blend per value (amax of 8 MiB from
// L3 on two Zen 4 cores: 89 us, 77 with 64 lanes of it, 60 with this).
template <bool kMax>
float fold_float_extremum(const float* row, int64_t r0, int64_t r1) {
  constexpr int kLanes = 64;
  float lanes[kLanes];
  int32_t nan[kLanes];
  for (int k = 0; k < kLanes; ++k) {
    lanes[k] = kMax ? math::lowest<float>() : math::highest<float>();
    nan[k] = 0;
  }
  int64_t r = r0;
  for (; r + kLanes <= r1; r += kLanes) {
    const float* p = row + r;
    prefetch_ahead(p, kLanes * sizeof(float));
    for (int k = 0; k < kLanes; ++k) {
      const float x = p[k];
      lanes[k] = kMax ? (x > lanes[k] ? x : lanes[k]) : (x < lanes[k] ? x : lanes[k]);
      nan[k] |= x != x;
    }
  }
  float acc = kMax ? math::lowest<float>() : math::highest<float>();
  bool any_nan = false;
  for (int k = 0; k < kLanes; ++k) {
    acc = kMax ? math::maximum(acc, lanes[k]) : math::minimum(acc, lanes[k]);
    any_nan |= nan[k] != 0;
  }
  for (; r < r1; ++r) acc = kMax ? math::maximum(acc, row[r]) : math::minimum(acc, row[r]);
  return any_nan ? std::numeric_limits<float>::quiet_NaN() : acc;
}

template <class In, class Op>
typename Op::acc_t fold(const In* row, int64_t r0, int64_t r1, const Op& op) {
  using Acc = typename Op::acc_t;
  if constexpr (PlainSum<Op> && std::is_same_v<In, float> && std::is_same_v<Acc, double>)
    return fold_float_sum(row, r0, r1);
  if constexpr (Extremum<Op> && std::is_same_v<In, float>) return fold_float_extremum<Op::kIsMaxOp>(row, r0, r1);
  constexpr int kLanes = std::is_arithmetic_v<Acc> ? 32 : 8;
  Acc lanes[kLanes];
  for (int k = 0; k < kLanes; ++k) lanes[k] = op.identity();
  int64_t r = r0;
  for (; r + kLanes <= r1; r += kLanes) {
    prefetch_ahead(row + r, kLanes * sizeof(In));
    for (int k = 0; k < kLanes; ++k) lanes[k] = op.step(lanes[k], row[r + k], r + k);
  }
  Acc acc = op.identity();
  for (int k = 0; k < kLanes; ++k) acc = op.combine(acc, lanes[k]);
  for (; r < r1; ++r) acc = op.step(acc, row[r], r);
  return acc;
}

template <class Op>
concept ArgReduction = Op::kIsArg;

// The value an arg op finds in row[r0, r1) (NaN if any), by the vectorising extremum fold.
template <class In, ArgReduction Op>
In extreme_value(const In* row, int64_t r0, int64_t r1) {
  return fold(row, r0, r1, ExtremumOp<In, Op::kIsMax>{nullptr});
}

// The first position in row[r0, r1) that holds v (for a NaN v: the first NaN), or -1.
template <class In>
int64_t first_position(const In* row, int64_t r0, int64_t r1, In v) {
  const bool nan = math::isnan(v);
  constexpr int64_t kBlock = 1024;
  for (int64_t b = r0; b < r1; b += kBlock) {
    const int64_t e = std::min(r1, b + kBlock);
    bool any = false;  // each loop vectorises
    if (nan) {
      for (int64_t r = b; r < e; ++r) any |= row[r] != row[r];
    } else {
      for (int64_t r = b; r < e; ++r) any |= row[r] == v;
    }
    if (!any) continue;
    for (int64_t r = b; r < e; ++r)
      if (nan ? math::isnan(row[r]) : row[r] == v) return r;
  }
  return -1;
}

template <class In, ArgReduction Op>
typename Op::acc_t fold_arg(const In* row, int64_t r0, int64_t r1) {
  if (r1 <= r0) return Op{}.identity();
  const In v = extreme_value<In, Op>(row, r0, r1);
  return typename Op::acc_t{v, first_position(row, r0, r1, v)};
}

template <class In, class Op>
typename Op::acc_t fold_row(const In* row, int64_t r0, int64_t r1, const Op& op) {
  if constexpr (ArgReduction<Op>) return fold_arg<In, Op>(row, r0, r1);
  else return fold(row, r0, r1, op);
}

template <class In, class Op>
void reduce_rows(const In* x, int64_t A, int64_t R, const Op& op) {
  using Acc = typename Op::acc_t;
  const int threads = num_threads();
  if (A >= threads || R * A < kParallelGrain) {
    parallel_chunks(A, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(R, 1)), [&](int64_t a0, int64_t a1) {
      for (int64_t a = a0; a < a1; ++a) op.write(fold_row(x + a * R, 0, R, op), a);
    });
    return;
  }
  // Few long rows: slices of a fixed length, handed out to the threads as they come free (a thread
  // slowed by the rest of the machine no longer holds the others up: with one slice per thread,
  // a sum of 2^24 floats took between 1.4 and 3 ms), their results combined in order.
  constexpr int64_t kSlice = int64_t{1} << 15;
  const int64_t slices = (R + kSlice - 1) / kSlice;
  const int64_t per = kSlice;
  std::vector<Acc> partial(static_cast<size_t>(A * slices));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
  for (int64_t s = 0; s < slices * A; ++s) {
    const int64_t a = s / slices, k = s % slices;
    const int64_t r0 = k * per, r1 = std::min(R, r0 + per);
    partial[static_cast<size_t>(s)] = fold_row(x + a * R, r0, r1, op);
  }
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

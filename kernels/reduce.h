// Reductions (sum, mean, max, min, argmax, argmin) over any set of dims. The input is planned
// (kernels/reduce.cpp) as a contiguous [A, R, B] block reduced over R into [A, B]. The ops and
// their combine steps live here, once; the traversals differ: kernels/cpu/reduce.cpp walks rows
// and column tiles, kernels/cuda/reduce.cu uses block/warp tree reductions and split rows.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/parallel.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace tessera {

enum class ReduceOp : uint8_t { Sum, Mean, Max, Min, ArgMax, ArgMin };

// Sum (and mean, via scale) with accumulator Acc; writes Out.
template <class In, class Acc, class Out>
struct SumOp {
  using acc_t = Acc;
  static constexpr bool kPlainSum = true;  // the CPU may add short runs of In before widening
  Out* out;
  double scale;  // 1 for sum, 1/R for mean
  TS_HD acc_t identity() const { return acc_t(0); }
  TS_HD acc_t step(acc_t a, In v, int64_t) const { return a + static_cast<acc_t>(v); }
  TS_HD acc_t combine(acc_t a, acc_t b) const { return a + b; }
  TS_HD void write(acc_t a, int64_t o) const {
    if constexpr (is_floating_v<Out>) out[o] = static_cast<Out>(a * static_cast<acc_t>(scale));
    else out[o] = static_cast<Out>(a);
  }
};

// Max (kMax) or min, NaN-propagating. The halves are compared as floats (exactly).
template <class T, bool kMax>
struct ExtremumOp {
  using acc_t = opmath_t<T>;
  static constexpr bool kExtremum = true, kIsMaxOp = kMax;  // the CPU folds float32 rows its own way
  T* out;
  TS_HD acc_t identity() const { return kMax ? math::lowest<acc_t>() : math::highest<acc_t>(); }
  TS_HD acc_t step(acc_t a, T v, int64_t) const { return combine(a, static_cast<acc_t>(v)); }
  TS_HD acc_t combine(acc_t a, acc_t b) const { return kMax ? math::maximum(a, b) : math::minimum(a, b); }
  TS_HD void write(acc_t a, int64_t o) const { out[o] = static_cast<T>(a); }
};

template <class T>
struct ValueIndex {
  T value;
  int64_t index;  // -1: nothing seen yet
};

// Argmax/argmin with the value: NaN wins (as in PyTorch), ties go to the smaller index.
template <class T, bool kMax>
struct ArgOp {
  using value_t = opmath_t<T>;
  using acc_t = ValueIndex<value_t>;
  static constexpr bool kIsArg = true, kIsMax = kMax;
  T* values;         // may be null
  int64_t* indices;
  TS_HD acc_t identity() const { return acc_t{kMax ? math::lowest<value_t>() : math::highest<value_t>(), -1}; }
  TS_HD acc_t step(acc_t a, T v, int64_t i) const { return combine(a, acc_t{static_cast<value_t>(v), i}); }
  TS_HD acc_t combine(acc_t a, acc_t b) const {
    if (a.index < 0) return b;
    if (b.index < 0) return a;
    const bool a_nan = math::isnan(a.value), b_nan = math::isnan(b.value);
    if (a_nan || b_nan) {
      if (a_nan && b_nan) return a.index <= b.index ? a : b;
      return a_nan ? a : b;
    }
    const bool b_better = kMax ? b.value > a.value : b.value < a.value;
    if (b_better) return b;
    if (b.value == a.value && b.index < a.index) return b;
    return a;
  }
  TS_HD void write(acc_t a, int64_t o) const {
    if (values) values[o] = static_cast<T>(a.value);
    indices[o] = a.index < 0 ? 0 : a.index;
  }
};

// Instantiates the op for `op` and x's dtype and calls run.template operator()<In>(op_object).
// kCuda selects float accumulation on the device (tree sums) and double on the host.
template <bool kCuda, class Run>
void reduce_dispatch(ReduceOp op, const Tensor& x, int64_t R, const Tensor& values, const Tensor& indices, Run&& run) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean: {
      const double scale = op == ReduceOp::Mean ? 1.0 / static_cast<double>(R) : 1.0;
      dispatch_all_with_half(x.dtype(), "sum", [&]<class In>() {
        if constexpr (is_floating_v<In>) {
          // The halves accumulate in float on the device and in double on the host.
          using Acc = std::conditional_t<kCuda, opmath_t<In>, double>;
          run.template operator()<In>(SumOp<In, Acc, In>{values.data<In>(), scale});
        } else {
          run.template operator()<In>(SumOp<In, int64_t, int64_t>{values.data<int64_t>(), scale});
        }
      });
      return;
    }
    case ReduceOp::Max:
    case ReduceOp::Min:
      dispatch_numeric_with_half(x.dtype(), "max/min", [&]<class In>() {
        if (op == ReduceOp::Max) run.template operator()<In>(ExtremumOp<In, true>{values.data<In>()});
        else run.template operator()<In>(ExtremumOp<In, false>{values.data<In>()});
      });
      return;
    case ReduceOp::ArgMax:
    case ReduceOp::ArgMin:
      dispatch_numeric_with_half(x.dtype(), "argmax/argmin", [&]<class In>() {
        In* v = values.defined() ? values.data<In>() : nullptr;
        if (op == ReduceOp::ArgMax) run.template operator()<In>(ArgOp<In, true>{v, indices.data<int64_t>()});
        else run.template operator()<In>(ArgOp<In, false>{v, indices.data<int64_t>()});
      });
      return;
  }
}

// x: contiguous, viewed as [A, R, B]; values/indices: contiguous with A*B elements.
void reduce_kernel_cpu(ReduceOp op, const Tensor& x, int64_t A, int64_t R, int64_t B, const Tensor& values,
                       const Tensor& indices);
void reduce_kernel_cuda(ReduceOp op, const Tensor& x, int64_t A, int64_t R, int64_t B, const Tensor& values,
                        const Tensor& indices);

// Reduces x over `dims` (sorted, unique, already wrapped; empty means every dim) into `values`
// and/or `indices`, contiguous tensors of x's shape without those dims. For arg ops over one dim
// the index is the position along it; over every dim, the flat index.
void reduce(ReduceOp op, const Tensor& x, const Shape& dims, const Tensor& values, const Tensor& indices);

}  // namespace tessera

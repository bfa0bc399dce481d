// Elementwise kernels: unary, binary (NumPy broadcasting), binary-with-scalar, where. One functor
// per op, launched by CpuLaunch (kernels/cpu/elementwise.cpp) or CudaLaunch (kernels/cuda/).
//
// The op layer (autograd/) decides dtypes (promotion) and allocates `out`; these kernels assume
// the inputs already have the compute dtype and broadcast to out's shape. `out` may be strided.
#pragma once

#include <cstdint>

#include "core/copy.h"
#include "core/strided.h"
#include "core/tensor.h"
#include "kernels/math.h"

namespace tessera {

enum class UnaryOp : uint8_t {
  Neg, Abs, Sign, Exp, Log, Log1p, Sqrt, Rsqrt, Relu, Sigmoid, Tanh, LogicalNot,
  Pow,    // x ** p0
  Clamp,  // clamp(x, p0, p1); a bound of NaN means "none"
};

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Minimum, Maximum,
  Eq, Ne, Lt, Le, Gt, Ge,         // -> bool
  LogicalAnd, LogicalOr,          // inputs read as bool -> bool
  ReluBackward,     // (grad, x) -> x > 0 ? grad : 0
  SigmoidBackward,  // (grad, y) -> grad * y * (1 - y)
  TanhBackward,     // (grad, y) -> grad * (1 - y * y)
};

bool is_comparison(BinaryOp op);
bool is_logical(BinaryOp op);
const char* op_name(UnaryOp op);
const char* op_name(BinaryOp op);

// ---------------------------------------------------------------------------------------------
// Per-element math

template <class T> struct NegF { TS_HD T operator()(T x) const { return -x; } };
template <class T> struct AbsF { TS_HD T operator()(T x) const { return math::abs(x); } };
template <class T> struct SignF {
  TS_HD T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T>) {
      return static_cast<T>(x != T(0));
    } else {
      if (math::isnan(x)) return x;
      return static_cast<T>((T(0) < x) - (x < T(0)));
    }
  }
};
template <class T> struct ExpF { TS_HD T operator()(T x) const { return math::exp(x); } };
template <class T> struct LogF { TS_HD T operator()(T x) const { return math::log(x); } };
template <class T> struct Log1pF { TS_HD T operator()(T x) const { return math::log1p(x); } };
template <class T> struct SqrtF { TS_HD T operator()(T x) const { return math::sqrt(x); } };
template <class T> struct RsqrtF { TS_HD T operator()(T x) const { return T(1) / math::sqrt(x); } };
template <class T> struct ReluF {
  TS_HD T operator()(T x) const { return math::isnan(x) ? x : (x > T(0) ? x : T(0)); }
};
template <class T> struct SigmoidF { TS_HD T operator()(T x) const { return T(1) / (T(1) + math::exp(-x)); } };
template <class T> struct TanhF { TS_HD T operator()(T x) const { return math::tanh(x); } };
template <class T> struct LogicalNotF { TS_HD bool operator()(T x) const { return !(x != T(0)); } };
template <class T> struct PowF {
  T p;
  TS_HD T operator()(T x) const {
    if (p == T(2)) return x * x;  // exact, and the common case
    if (p == T(1)) return x;
    if (p == T(0.5)) return math::sqrt(x);
    return math::pow(x, p);
  }
};
template <class T> struct ClampF {
  T lo, hi;
  bool has_lo, has_hi;
  TS_HD T operator()(T x) const {
    if (math::isnan(x)) return x;
    if (has_lo && x < lo) x = lo;
    if (has_hi && x > hi) x = hi;
    return x;
  }
};

template <class T> struct AddF { TS_HD T operator()(T a, T b) const { return a + b; } };
template <class T> struct SubF { TS_HD T operator()(T a, T b) const { return a - b; } };
template <class T> struct MulF { TS_HD T operator()(T a, T b) const { return a * b; } };
template <class T> struct DivF { TS_HD T operator()(T a, T b) const { return a / b; } };
template <class T> struct MinimumF { TS_HD T operator()(T a, T b) const { return math::minimum(a, b); } };
template <class T> struct MaximumF { TS_HD T operator()(T a, T b) const { return math::maximum(a, b); } };
template <class T> struct EqF { TS_HD bool operator()(T a, T b) const { return a == b; } };
template <class T> struct NeF { TS_HD bool operator()(T a, T b) const { return a != b; } };
template <class T> struct LtF { TS_HD bool operator()(T a, T b) const { return a < b; } };
template <class T> struct LeF { TS_HD bool operator()(T a, T b) const { return a <= b; } };
template <class T> struct GtF { TS_HD bool operator()(T a, T b) const { return a > b; } };
template <class T> struct GeF { TS_HD bool operator()(T a, T b) const { return a >= b; } };
template <class T> struct AndF { TS_HD bool operator()(T a, T b) const { return (a != T(0)) && (b != T(0)); } };
template <class T> struct OrF { TS_HD bool operator()(T a, T b) const { return (a != T(0)) || (b != T(0)); } };
template <class T> struct ReluBackwardF { TS_HD T operator()(T g, T x) const { return x > T(0) ? g : T(0); } };
template <class T> struct SigmoidBackwardF { TS_HD T operator()(T g, T y) const { return g * y * (T(1) - y); } };
template <class T> struct TanhBackwardF { TS_HD T operator()(T g, T y) const { return g * (T(1) - y * y); } };

// A binary functor with one operand fixed: f(x, s), or f(s, x) when scalar_first.
template <class F, class T>
struct BindScalar {
  F f;
  T s;
  bool scalar_first;
  TS_HD auto operator()(T x) const { return scalar_first ? f(s, x) : f(x, s); }
};

// ---------------------------------------------------------------------------------------------
// Kernels

template <class Out, class In, class F>
struct UnaryKernel {
  Out* out;
  const In* in;
  F f;
  StridedIndex<2> index;
  bool contiguous;
  TS_HD void operator()(int64_t i) const {
    if (contiguous) {
      out[i] = static_cast<Out>(f(in[i]));
    } else {
      int64_t off[2];
      index.offsets(i, off);
      out[off[0]] = static_cast<Out>(f(in[off[1]]));
    }
  }
  void range(int64_t b, int64_t e) const {
    if (contiguous) {
      for (int64_t i = b; i < e; ++i) out[i] = static_cast<Out>(f(in[i]));
      return;
    }
    const int64_t so = inner_stride(index, 0), si = inner_stride(index, 1);
    for_each_run(index, b, e, [&](const int64_t (&off)[2], int64_t n) {
      Out* o = out + off[0];
      const In* x = in + off[1];
      if (so == 1 && si == 1) {
        for (int64_t j = 0; j < n; ++j) o[j] = static_cast<Out>(f(x[j]));
      } else {
        for (int64_t j = 0; j < n; ++j) o[j * so] = static_cast<Out>(f(x[j * si]));
      }
    });
  }
};

template <class Out, class In, class F>
struct BinaryKernel {
  Out* out;
  const In* a;
  const In* b;
  F f;
  StridedIndex<3> index;
  bool contiguous;
  TS_HD void operator()(int64_t i) const {
    if (contiguous) {
      out[i] = static_cast<Out>(f(a[i], b[i]));
    } else {
      int64_t off[3];
      index.offsets(i, off);
      out[off[0]] = static_cast<Out>(f(a[off[1]], b[off[2]]));
    }
  }
  void range(int64_t begin, int64_t end) const {
    if (contiguous) {
      for (int64_t i = begin; i < end; ++i) out[i] = static_cast<Out>(f(a[i], b[i]));
      return;
    }
    const int64_t so = inner_stride(index, 0), sa = inner_stride(index, 1), sb = inner_stride(index, 2);
    for_each_run(index, begin, end, [&](const int64_t (&off)[3], int64_t n) {
      Out* o = out + off[0];
      const In* x = a + off[1];
      const In* y = b + off[2];
      if (so == 1 && sa == 1 && sb == 1) {
        for (int64_t j = 0; j < n; ++j) o[j] = static_cast<Out>(f(x[j], y[j]));
      } else if (so == 1 && sa == 1 && sb == 0) {  // a row against a broadcast value (bias adds)
        const In yv = *y;
        for (int64_t j = 0; j < n; ++j) o[j] = static_cast<Out>(f(x[j], yv));
      } else if (so == 1 && sa == 0 && sb == 1) {
        const In xv = *x;
        for (int64_t j = 0; j < n; ++j) o[j] = static_cast<Out>(f(xv, y[j]));
      } else {
        for (int64_t j = 0; j < n; ++j) o[j * so] = static_cast<Out>(f(x[j * sa], y[j * sb]));
      }
    });
  }
};

// out = cond ? a : b, with a and b tensors (b_is_scalar: b is `scalar` instead).
template <class T>
struct WhereKernel {
  T* out;
  const bool* cond;
  const T* a;
  const T* b;
  T scalar;
  bool b_is_scalar;
  StridedIndex<4> index;
  TS_HD void operator()(int64_t i) const {
    int64_t off[4];
    index.offsets(i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : (b_is_scalar ? scalar : b[off[3]]);
  }
};

inline bool same_dense_layout(const Tensor& out, const Tensor& x) {
  return x.shape() == out.shape() && x.is_contiguous() && out.is_contiguous();
}

template <class Out, class In, class F, class Launch>
void launch_unary(const Launch& launch, const Tensor& out, const Tensor& in, F f, const char* name) {
  UnaryKernel<Out, In, F> k{out.data<Out>(), in.data<In>(), f, {}, same_dense_layout(out, in)};
  if (!k.contiguous) k.index = make_strided_index<2>(out.shape(), {out.strides(), broadcast_strides(in, out.shape())});
  launch(out.numel(), k, name);
}

template <class Out, class In, class F, class Launch>
void launch_binary(const Launch& launch, const Tensor& out, const Tensor& a, const Tensor& b, F f, const char* name) {
  BinaryKernel<Out, In, F> k{out.data<Out>(), a.data<In>(), b.data<In>(), f, {},
                             same_dense_layout(out, a) && same_dense_layout(out, b)};
  if (!k.contiguous)
    k.index = make_strided_index<3>(out.shape(), {out.strides(), broadcast_strides(a, out.shape()),
                                                  broadcast_strides(b, out.shape())});
  launch(out.numel(), k, name);
}

template <class Launch>
void unary_kernel(const Launch& L, UnaryOp op, const Tensor& out, const Tensor& in, double p0, double p1) {
  if (out.numel() == 0) return;
  const char* name = op_name(op);
  switch (op) {
// T is the stored type, C = opmath_t<T> the one the functor computes in (float for the halves:
// loaded, computed in float, rounded once on the store).
#define TS_UNARY(OP, DISPATCH, F)                                                                   \
  case UnaryOp::OP:                                                                                 \
    DISPATCH(in.dtype(), name, [&]<class T>() { launch_unary<T, T>(L, out, in, F<opmath_t<T>>{}, name); }); \
    return;
    TS_UNARY(Neg, dispatch_numeric_with_half, NegF)
    TS_UNARY(Abs, dispatch_numeric_with_half, AbsF)
    TS_UNARY(Sign, dispatch_numeric_with_half, SignF)
    TS_UNARY(Relu, dispatch_numeric_with_half, ReluF)
    TS_UNARY(Exp, dispatch_floating_with_half, ExpF)
    TS_UNARY(Log, dispatch_floating_with_half, LogF)
    TS_UNARY(Log1p, dispatch_floating_with_half, Log1pF)
    TS_UNARY(Sqrt, dispatch_floating_with_half, SqrtF)
    TS_UNARY(Rsqrt, dispatch_floating_with_half, RsqrtF)
    TS_UNARY(Sigmoid, dispatch_floating_with_half, SigmoidF)
    TS_UNARY(Tanh, dispatch_floating_with_half, TanhF)
#undef TS_UNARY
    case UnaryOp::LogicalNot:
      dispatch_all_with_half(in.dtype(), name, [&]<class T>() {
        launch_unary<bool, T>(L, out, in, LogicalNotF<opmath_t<T>>{}, name);
      });
      return;
    case UnaryOp::Pow:
      dispatch_floating_with_half(in.dtype(), name, [&]<class T>() {
        using C = opmath_t<T>;
        launch_unary<T, T>(L, out, in, PowF<C>{static_cast<C>(p0)}, name);
      });
      return;
    case UnaryOp::Clamp:
      dispatch_numeric_with_half(in.dtype(), name, [&]<class T>() {
        using C = opmath_t<T>;
        ClampF<C> f{math::isnan(p0) ? C(0) : static_cast<C>(p0), math::isnan(p1) ? C(0) : static_cast<C>(p1),
                    !math::isnan(p0), !math::isnan(p1)};
        launch_unary<T, T>(L, out, in, f, name);
      });
      return;
  }
}

// The op -> functor table, in one place for the tensor and scalar variants. Each entry also says
// which dtypes the op is instantiated for, so that no functor is compiled for a type it cannot take.
enum class OpDtypes { Numeric, Floating, All };

template <template <class> class F, OpDtypes D>
struct FunctorTag {
  template <class T> using type = F<T>;
  static constexpr OpDtypes dtypes = D;
};

template <class Body>
void visit_binary_op(BinaryOp op, Body&& body) {
  using enum OpDtypes;
  switch (op) {
    case BinaryOp::Add: return body(FunctorTag<AddF, Numeric>{});
    case BinaryOp::Sub: return body(FunctorTag<SubF, Numeric>{});
    case BinaryOp::Mul: return body(FunctorTag<MulF, Numeric>{});
    case BinaryOp::Div: return body(FunctorTag<DivF, Numeric>{});
    case BinaryOp::Minimum: return body(FunctorTag<MinimumF, Numeric>{});
    case BinaryOp::Maximum: return body(FunctorTag<MaximumF, Numeric>{});
    case BinaryOp::Eq: return body(FunctorTag<EqF, All>{});
    case BinaryOp::Ne: return body(FunctorTag<NeF, All>{});
    case BinaryOp::Lt: return body(FunctorTag<LtF, All>{});
    case BinaryOp::Le: return body(FunctorTag<LeF, All>{});
    case BinaryOp::Gt: return body(FunctorTag<GtF, All>{});
    case BinaryOp::Ge: return body(FunctorTag<GeF, All>{});
    case BinaryOp::LogicalAnd: return body(FunctorTag<AndF, All>{});
    case BinaryOp::LogicalOr: return body(FunctorTag<OrF, All>{});
    case BinaryOp::ReluBackward: return body(FunctorTag<ReluBackwardF, Floating>{});
    case BinaryOp::SigmoidBackward: return body(FunctorTag<SigmoidBackwardF, Floating>{});
    case BinaryOp::TanhBackward: return body(FunctorTag<TanhBackwardF, Floating>{});
  }
}

template <class Tag, class Body>
void dispatch_for_tag(DType dtype, const char* name, Body&& body) {
  if constexpr (Tag::dtypes == OpDtypes::All) dispatch_all_with_half(dtype, name, body);
  else if constexpr (Tag::dtypes == OpDtypes::Floating) dispatch_floating_with_half(dtype, name, body);
  else dispatch_numeric_with_half(dtype, name, body);
}

// The functor of Tag computing in opmath_t<T>, and what it stores: bool for comparisons and logic,
// else T.
template <class Tag, class T>
using OpmathFunctor = typename Tag::template type<opmath_t<T>>;
template <class Tag, class T>
using StoredResult = std::conditional_t<
    std::is_same_v<decltype(OpmathFunctor<Tag, T>{}(opmath_t<T>{}, opmath_t<T>{})), bool>, bool, T>;

template <class Launch>
void binary_kernel(const Launch& L, BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if (out.numel() == 0) return;
  const char* name = op_name(op);
  visit_binary_op(op, [&]<class Tag>(Tag) {
    dispatch_for_tag<Tag>(a.dtype(), name, [&]<class T>() {
      launch_binary<StoredResult<Tag, T>, T>(L, out, a, b, OpmathFunctor<Tag, T>{}, name);
    });
  });
}

template <class Launch>
void binary_scalar_kernel(const Launch& L, BinaryOp op, const Tensor& out, const Tensor& a, double s, bool scalar_first) {
  if (out.numel() == 0) return;
  const char* name = op_name(op);
  visit_binary_op(op, [&]<class Tag>(Tag) {
    dispatch_for_tag<Tag>(a.dtype(), name, [&]<class T>() {
      using F = OpmathFunctor<Tag, T>;
      using C = opmath_t<T>;
      launch_unary<StoredResult<Tag, T>, T>(L, out, a, BindScalar<F, C>{F{}, cast_value<C>(s), scalar_first}, name);
    });
  });
}

// b undefined: use `scalar` for it (masked_fill).
template <class Launch>
void where_kernel(const Launch& L, const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b, double scalar) {
  if (out.numel() == 0) return;
  dispatch_all_with_half(out.dtype(), "where", [&]<class T>() {
    const bool b_scalar = !b.defined();
    WhereKernel<T> k{out.data<T>(), cond.data<bool>(), a.data<T>(), b_scalar ? nullptr : b.data<T>(),
                     cast_value<T>(scalar), b_scalar, {}};
    k.index = make_strided_index<4>(out.shape(), {out.strides(), broadcast_strides(cond, out.shape()),
                                                  broadcast_strides(a, out.shape()),
                                                  b_scalar ? Shape(out.dim(), 0) : broadcast_strides(b, out.shape())});
    L(out.numel(), k, "where_kernel");
  });
}

// Entry points (kernels/cpu/elementwise.cpp, kernels/cuda/elementwise.cu), routed by out's device.
void unary_kernel_cpu(UnaryOp op, const Tensor& out, const Tensor& in, double p0, double p1);
void binary_kernel_cpu(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);
void binary_scalar_kernel_cpu(BinaryOp op, const Tensor& out, const Tensor& a, double s, bool scalar_first);
void where_kernel_cpu(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b, double scalar);
void unary_kernel_cuda(UnaryOp op, const Tensor& out, const Tensor& in, double p0, double p1);
void binary_kernel_cuda(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);
void binary_scalar_kernel_cuda(BinaryOp op, const Tensor& out, const Tensor& a, double s, bool scalar_first);
void where_kernel_cuda(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b, double scalar);

}  // namespace tessera

namespace tessera {
// Routed by out's device: what the op layer calls.
void elementwise_unary(UnaryOp op, const Tensor& out, const Tensor& in, double p0 = 0, double p1 = 0);
void elementwise_binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);
void elementwise_binary_scalar(BinaryOp op, const Tensor& out, const Tensor& a, double s, bool scalar_first = false);
// out = cond ? a : b; with b undefined, out = cond ? a : scalar.
void elementwise_where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b, double scalar = 0);
}  // namespace tessera

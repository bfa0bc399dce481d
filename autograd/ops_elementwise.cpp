// Elementwise ops: promotion, broadcasting, and their backward rules.
#include <cstdio>
#include <mutex>

#include <cmath>

#include "autograd/autocast.h"
#include "autograd/op_helpers.h"
#include "kernels/conv_settings.h"
#include "kernels/elementwise.h"

namespace tessera {

namespace detail {

void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    TS_CHECK(t->defined(), op, ": an input tensor is undefined");
    if (!first) {
      first = t;
      continue;
    }
    TS_CHECK(t->device() == first->device(), op, ": all tensors must be on one device, got ", first->device(),
             " and ", t->device());
  }
}

void check_floating(const char* op, const Tensor& t, const char* what) {
  TS_CHECK(is_floating(t.dtype()), op, ": ", what, " must be floating, got ", dtype_name(t.dtype()));
}

Tensor widen_half(const Tensor& x) { return x.defined() && is_half(x.dtype()) ? x.to(DType::Float32) : x; }

bool widens_on_cpu(const Tensor& x) {
  return is_half(x.dtype()) && !x.is_cuda() && !(x.dtype() == DType::BFloat16 && cpu_bf16_kernels());
}

void note_half_through_float32(const char* op, const Tensor& x) {
  static std::once_flag once;
  std::call_once(once, [&] {
    std::fprintf(stderr, "tessera: %s of %s on %s runs through float32 (rounded to %s once): no 16-bit kernel for it "
                 "yet, so this is slower than float32\n", op, dtype_name(x.dtype()), x.device().str().c_str(),
                 dtype_name(x.dtype()));
  });
}

}  // namespace detail

using detail::check_same_device;

namespace {

int category(DType d) { return d == DType::Bool ? 0 : is_floating(d) ? 2 : 1; }

bool produces_bool(BinaryOp op) { return is_comparison(op) || is_logical(op); }

Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b, DType compute) {
  const char* name = op_name(op);
  check_same_device(name, {&a, &b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = raw::empty(shape, produces_bool(op) ? DType::Bool : compute, a.device());
  elementwise_binary(op, out, raw::to(a, compute), raw::to(b, compute));
  return out;
}

Tensor scalar_raw(BinaryOp op, const Tensor& a, double s, bool scalar_first, DType compute) {
  TS_CHECK(a.defined(), op_name(op), ": the input tensor is undefined");
  Tensor out = raw::empty(a.shape(), produces_bool(op) ? DType::Bool : compute, a.device());
  elementwise_binary_scalar(op, out, raw::to(a, compute), s, scalar_first);
  return out;
}

// Integers and bool become float32 for ops whose result is fractional (exp, log, sigmoid, ...).
DType floating_of(DType d) { return is_floating(d) ? d : DType::Float32; }

Tensor unary_raw(UnaryOp op, const Tensor& x, DType compute, double p0 = 0, double p1 = 0) {
  TS_CHECK(x.defined(), op_name(op), ": the input tensor is undefined");
  Tensor out = raw::empty(x.shape(), op == UnaryOp::LogicalNot ? DType::Bool : compute, x.device());
  elementwise_unary(op, out, raw::to(x, compute), p0, p1);
  return out;
}

// Records a unary op whose backward needs only (grad, saved) -> grad_input.
template <class F>
Tensor unary_with_backward(const char* name, const Tensor& x, const Tensor& out, const Tensor& saved, F backward) {
  if (needs_grad({&x})) {
    SavedTensor s(saved);
    record(name, {x}, {out}, [s, backward](std::vector<Tensor>& g) { return std::vector<Tensor>{backward(g[0], s.get())}; });
  }
  return out;
}

}  // namespace

// ---- promotion

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    TS_CHECK(da == db || da == 1 || db == 1, "shapes ", shape_str(a), " and ", shape_str(b),
             " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

DType result_type(const Tensor& a, const Tensor& b) {
  const bool a_dims = a.dim() > 0, b_dims = b.dim() > 0;
  if (a_dims == b_dims) return promote_types(a.dtype(), b.dtype());
  // A 0-dim tensor only raises the result when it is of a higher category (bool < int < float).
  const Tensor& dimensioned = a_dims ? a : b;
  const Tensor& zero_dim = a_dims ? b : a;
  if (category(zero_dim.dtype()) > category(dimensioned.dtype())) return promote_types(dimensioned.dtype(), zero_dim.dtype());
  return dimensioned.dtype();
}

DType result_type(const Tensor& a, double scalar) {
  if (is_floating(a.dtype())) return a.dtype();
  const bool integral = std::isfinite(scalar) && std::floor(scalar) == scalar;
  if (!integral) return DType::Float32;
  return a.dtype() == DType::Bool ? DType::Int64 : a.dtype();
}

// ---- binary arithmetic

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Add, a, b, result_type(a, b));
  if (needs_grad({&a, &b})) {
    record("AddBackward", {a, b}, {out}, [sa = a.shape(), sb = b.shape()](std::vector<Tensor>& g) {
      return std::vector<Tensor>{sum_to(g[0], sa), sum_to(g[0], sb)};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Sub, a, b, result_type(a, b));
  if (needs_grad({&a, &b})) {
    record("SubBackward", {a, b}, {out}, [sa = a.shape(), sb = b.shape()](std::vector<Tensor>& g) {
      return std::vector<Tensor>{sum_to(g[0], sa), sum_to(neg(g[0]), sb)};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Mul, a, b, result_type(a, b));
  if (needs_grad({&a, &b})) {
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    record("MulBackward", {a, b}, {out},
           [sa = SavedTensor(need_b ? a : Tensor()), sb = SavedTensor(need_a ? b : Tensor()), shape_a = a.shape(),
            shape_b = b.shape(), need_a, need_b](std::vector<Tensor>& g) {
             return std::vector<Tensor>{need_a ? sum_to(mul(g[0], sb.get()), shape_a) : Tensor(),
                                        need_b ? sum_to(mul(g[0], sa.get()), shape_b) : Tensor()};
           });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(BinaryOp::Div, a, b, floating_of(result_type(a, b)));
  if (needs_grad({&a, &b})) {
    const bool need_b = b.requires_grad();
    record("DivBackward", {a, b}, {out},
           [sb = SavedTensor(b), so = SavedTensor(need_b ? out : Tensor()), shape_a = a.shape(), shape_b = b.shape(),
            need_b](std::vector<Tensor>& g) {
             Tensor b_ = sb.get();
             Tensor ga = sum_to(div(g[0], b_), shape_a);
             Tensor gb = need_b ? sum_to(neg(div(mul(g[0], so.get()), b_)), shape_b) : Tensor();
             return std::vector<Tensor>{ga, gb};
           });
  }
  return out;
}

// Gradient split of minimum/maximum: all to the winner, half each on ties (as PyTorch).
static Tensor extremum(const Tensor& a, const Tensor& b, bool is_max) {
  const BinaryOp op = is_max ? BinaryOp::Maximum : BinaryOp::Minimum;
  Tensor out = binary_raw(op, a, b, result_type(a, b));
  if (needs_grad({&a, &b})) {
    record(is_max ? "MaximumBackward" : "MinimumBackward", {a, b}, {out},
           [sa = SavedTensor(a), sb = SavedTensor(b), shape_a = a.shape(), shape_b = b.shape(),
            is_max](std::vector<Tensor>& g) {
             Tensor a_ = sa.get(), b_ = sb.get();
             Tensor wins = to(is_max ? gt(a_, b_) : lt(a_, b_), g[0].dtype());
             Tensor ties = to(eq(a_, b_), g[0].dtype());
             Tensor wa = add(wins, mul(ties, 0.5));
             return std::vector<Tensor>{sum_to(mul(g[0], wa), shape_a), sum_to(mul(g[0], rsub(wa, 1.0)), shape_b)};
           });
  }
  return out;
}
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(a, b, false); }
Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(a, b, true); }

// ---- with a number

Tensor add(const Tensor& a, double b) {
  Tensor out = scalar_raw(BinaryOp::Add, a, b, false, result_type(a, b));
  return unary_with_backward("AddBackward", a, out, Tensor(), [](const Tensor& g, const Tensor&) { return g; });
}
Tensor sub(const Tensor& a, double b) { return add(a, -b); }
Tensor rsub(const Tensor& a, double b) {
  Tensor out = scalar_raw(BinaryOp::Sub, a, b, true, result_type(a, b));
  return unary_with_backward("RsubBackward", a, out, Tensor(), [](const Tensor& g, const Tensor&) { return neg(g); });
}
Tensor mul(const Tensor& a, double b) {
  Tensor out = scalar_raw(BinaryOp::Mul, a, b, false, result_type(a, b));
  return unary_with_backward("MulBackward", a, out, Tensor(), [b](const Tensor& g, const Tensor&) { return mul(g, b); });
}
Tensor div(const Tensor& a, double b) {
  Tensor out = scalar_raw(BinaryOp::Div, a, b, false, floating_of(result_type(a, b)));
  return unary_with_backward("DivBackward", a, out, Tensor(), [b](const Tensor& g, const Tensor&) { return div(g, b); });
}
Tensor rdiv(const Tensor& a, double b) {  // b / a: d/da = -b / a^2 = -out / a
  Tensor out = scalar_raw(BinaryOp::Div, a, b, true, floating_of(result_type(a, b)));
  if (needs_grad({&a})) {
    record("RdivBackward", {a}, {out}, [sa = SavedTensor(a), so = SavedTensor(out)](std::vector<Tensor>& g) {
      return std::vector<Tensor>{neg(div(mul(g[0], so.get()), sa.get()))};
    });
  }
  return out;
}

// ---- comparisons and logic

#define TS_COMPARISON(name, OP)                                                                   \
  Tensor name(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::OP, a, b, result_type(a, b)); } \
  Tensor name(const Tensor& a, double b) { return scalar_raw(BinaryOp::OP, a, b, false, result_type(a, b)); }
TS_COMPARISON(eq, Eq)
TS_COMPARISON(ne, Ne)
TS_COMPARISON(lt, Lt)
TS_COMPARISON(le, Le)
TS_COMPARISON(gt, Gt)
TS_COMPARISON(ge, Ge)
#undef TS_COMPARISON

Tensor logical_and(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::LogicalAnd, a, b, result_type(a, b)); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return binary_raw(BinaryOp::LogicalOr, a, b, result_type(a, b)); }
Tensor logical_not(const Tensor& x) { return unary_raw(UnaryOp::LogicalNot, x, x.dtype()); }

// ---- unary

Tensor neg(const Tensor& x) {
  TS_CHECK(x.defined() && x.dtype() != DType::Bool, "neg: not defined for bool tensors; use logical_not");
  Tensor out = unary_raw(UnaryOp::Neg, x, x.dtype());
  return unary_with_backward("NegBackward", x, out, Tensor(), [](const Tensor& g, const Tensor&) { return neg(g); });
}
Tensor abs(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Abs, x, x.dtype());
  return unary_with_backward("AbsBackward", x, out, x, [](const Tensor& g, const Tensor& x_) { return mul(g, sign(x_)); });
}
Tensor sign(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Sign, x, x.dtype());
  return unary_with_backward("SignBackward", x, out, Tensor(), [](const Tensor& g, const Tensor&) { return zeros_like(g); });
}
Tensor exp(const Tensor& x) {
  TS_AUTOCAST_F32(x, exp(TS_F32(x)));
  Tensor out = unary_raw(UnaryOp::Exp, x, floating_of(x.dtype()));
  return unary_with_backward("ExpBackward", x, out, out, [](const Tensor& g, const Tensor& y) { return mul(g, y); });
}
Tensor log(const Tensor& x) {
  TS_AUTOCAST_F32(x, log(TS_F32(x)));
  Tensor out = unary_raw(UnaryOp::Log, x, floating_of(x.dtype()));
  return unary_with_backward("LogBackward", x, out, x, [](const Tensor& g, const Tensor& x_) { return div(g, x_); });
}
Tensor log1p(const Tensor& x) {
  TS_AUTOCAST_F32(x, log1p(TS_F32(x)));
  Tensor out = unary_raw(UnaryOp::Log1p, x, floating_of(x.dtype()));
  return unary_with_backward("Log1pBackward", x, out, x, [](const Tensor& g, const Tensor& x_) { return div(g, add(x_, 1.0)); });
}
Tensor sqrt(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Sqrt, x, floating_of(x.dtype()));
  return unary_with_backward("SqrtBackward", x, out, out,
                             [](const Tensor& g, const Tensor& y) { return div(g, mul(y, 2.0)); });
}
Tensor rsqrt(const Tensor& x) {
  TS_AUTOCAST_F32(x, rsqrt(TS_F32(x)));
  Tensor out = unary_raw(UnaryOp::Rsqrt, x, floating_of(x.dtype()));
  return unary_with_backward("RsqrtBackward", x, out, out,
                             [](const Tensor& g, const Tensor& y) { return mul(mul(g, pow(y, 3.0)), -0.5); });
}
Tensor relu(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Relu, x, x.dtype());
  return unary_with_backward("ReluBackward", x, out, out, [](const Tensor& g, const Tensor& y) {
    Tensor gx = raw::empty(g.shape(), g.dtype(), g.device());
    elementwise_binary(BinaryOp::ReluBackward, gx, g, y);
    return gx;
  });
}
Tensor sigmoid(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Sigmoid, x, floating_of(x.dtype()));
  return unary_with_backward("SigmoidBackward", x, out, out, [](const Tensor& g, const Tensor& y) {
    Tensor gx = raw::empty(g.shape(), g.dtype(), g.device());
    elementwise_binary(BinaryOp::SigmoidBackward, gx, g, y);
    return gx;
  });
}
Tensor tanh(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Tanh, x, floating_of(x.dtype()));
  return unary_with_backward("TanhBackward", x, out, out, [](const Tensor& g, const Tensor& y) {
    Tensor gx = raw::empty(g.shape(), g.dtype(), g.device());
    elementwise_binary(BinaryOp::TanhBackward, gx, g, y);
    return gx;
  });
}
Tensor pow(const Tensor& x, double p) {
  TS_AUTOCAST_F32(x, pow(TS_F32(x), p));
  Tensor out = unary_raw(UnaryOp::Pow, x, floating_of(x.dtype()), p);
  return unary_with_backward("PowBackward", x, out, x, [p](const Tensor& g, const Tensor& x_) {
    if (p == 0.0) return zeros_like(g);
    return mul(mul(g, pow(x_, p - 1.0)), p);
  });
}
Tensor square(const Tensor& x) { return pow(x, 2.0); }

Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi) {
  TS_CHECK(lo.has_value() || hi.has_value(), "clamp: at least one of min and max must be given");
  const double nan = std::nan("");
  Tensor out = unary_raw(UnaryOp::Clamp, x, x.dtype(), lo.value_or(nan), hi.value_or(nan));
  return unary_with_backward("ClampBackward", x, out, x, [lo, hi](const Tensor& g, const Tensor& x_) {
    // The gradient passes where min <= x <= max (as PyTorch).
    Tensor inside;
    if (lo && hi) inside = logical_and(ge(x_, *lo), le(x_, *hi));
    else if (lo) inside = ge(x_, *lo);
    else inside = le(x_, *hi);
    return where(inside, g, 0.0);
  });
}
Tensor clamp_min(const Tensor& x, double lo) { return clamp(x, lo, std::nullopt); }
Tensor clamp_max(const Tensor& x, double hi) { return clamp(x, std::nullopt, hi); }

// ---- where / masked_fill

static void check_condition(const char* op, const Tensor& cond) {
  TS_CHECK(cond.defined() && cond.dtype() == DType::Bool, op, ": the condition must be a bool tensor, got ",
           cond.defined() ? dtype_name(cond.dtype()) : "undefined");
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_condition("where", cond);
  check_same_device("where", {&cond, &a, &b});
  const DType dt = result_type(a, b);
  const Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape()));
  Tensor out = raw::empty(shape, dt, a.device());
  elementwise_where(out, cond, raw::to(a, dt), raw::to(b, dt));
  if (needs_grad({&a, &b})) {
    record("WhereBackward", {a, b}, {out},
           [sc = SavedTensor(cond), shape_a = a.shape(), shape_b = b.shape()](std::vector<Tensor>& g) {
             Tensor c = sc.get();
             return std::vector<Tensor>{sum_to(where(c, g[0], 0.0), shape_a), sum_to(where(c, 0.0, g[0]), shape_b)};
           });
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, double b) {
  check_condition("where", cond);
  check_same_device("where", {&cond, &a});
  const DType dt = result_type(a, b);
  Tensor out = raw::empty(broadcast_shapes(cond.shape(), a.shape()), dt, a.device());
  elementwise_where(out, cond, raw::to(a, dt), Tensor(), b);
  if (needs_grad({&a})) {
    record("WhereBackward", {a}, {out}, [sc = SavedTensor(cond), shape_a = a.shape()](std::vector<Tensor>& g) {
      return std::vector<Tensor>{sum_to(where(sc.get(), g[0], 0.0), shape_a)};
    });
  }
  return out;
}

Tensor where(const Tensor& cond, double a, const Tensor& b) { return where(logical_not(cond), b, a); }

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_condition("masked_fill", mask);
  return where(logical_not(mask), x, value);
}

// ---- in-place

Tensor& add_(Tensor& self, const Tensor& other, double alpha) {
  check_inplace_allowed(self, "add_");
  check_same_device("add_", {&self, &other});
  (void)broadcast_strides(other, self.shape());
  Tensor o = raw::to(other, self.dtype());
  if (alpha != 1.0) {
    Tensor scaled = raw::empty(o.shape(), o.dtype(), o.device());
    elementwise_binary_scalar(BinaryOp::Mul, scaled, o, alpha);
    o = scaled;
  }
  elementwise_binary(BinaryOp::Add, self, self, o);
  self.storage()->bump_version();
  return self;
}

Tensor& mul_(Tensor& self, double value) {
  check_inplace_allowed(self, "mul_");
  elementwise_binary_scalar(BinaryOp::Mul, self, self, value);
  self.storage()->bump_version();
  return self;
}

Tensor& mul_(Tensor& self, const Tensor& other) {
  check_inplace_allowed(self, "mul_");
  check_same_device("mul_", {&self, &other});
  (void)broadcast_strides(other, self.shape());
  elementwise_binary(BinaryOp::Mul, self, self, raw::to(other, self.dtype()));
  self.storage()->bump_version();
  return self;
}

// ---- operators

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(double a, const Tensor& b) { return rsub(b, a); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(double a, const Tensor& b) { return rdiv(b, a); }

}  // namespace tessera

// Elementwise ops in the op table: unary, binary with broadcasting, numbers, promotion, where.
#include "op_table.h"

namespace tessera::test {
namespace {

using V = const std::vector<Tensor>&;
using H = const std::vector<Host>&;

OpCase unary(const std::string& name, Kind kind, std::function<Tensor(const Tensor&)> f, std::function<double(double)> r,
             bool diff = true) {
  return {name, {{{3, 4}, kind}}, [f](V x) { return f(x[0]); }, [r](H h) { return ref::map(h[0], r); }, diff};
}

OpCase binary(const std::string& name, Shape a, Shape b, Kind kb, std::function<Tensor(const Tensor&, const Tensor&)> f,
              std::function<double(double, double)> r, bool diff = true) {
  return {name, {{a}, {b, kb}}, [f](V x) { return f(x[0], x[1]); }, [r](H h) { return ref::zip(h[0], h[1], r); }, diff};
}

double sgn(double v) { return (v > 0) - (v < 0); }

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  // ---- unary
  c.push_back(unary("neg", Kind::Normal, [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }));
  c.push_back(unary("abs", Kind::Normal, [](const Tensor& x) { return abs(x); }, [](double v) { return std::fabs(v); }));
  c.push_back(unary("sign", Kind::Normal, [](const Tensor& x) { return sign(x); }, sgn));
  c.push_back(unary("exp", Kind::Normal, [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }));
  c.push_back(unary("log", Kind::Positive, [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }));
  c.push_back(unary("sqrt", Kind::Positive, [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }));
  c.push_back(unary("rsqrt", Kind::Positive, [](const Tensor& x) { return rsqrt(x); }, [](double v) { return 1 / std::sqrt(v); }));
  c.push_back(unary("relu", Kind::Normal, [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0; }));
  c.push_back(unary("sigmoid", Kind::Normal, [](const Tensor& x) { return sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); }));
  c.push_back(unary("tanh", Kind::Normal, [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }));
  c.push_back(unary("pow_2", Kind::Normal, [](const Tensor& x) { return pow(x, 2.0); }, [](double v) { return v * v; }));
  c.push_back(unary("pow_3", Kind::Normal, [](const Tensor& x) { return pow(x, 3.0); }, [](double v) { return v * v * v; }));
  c.push_back(unary("pow_half", Kind::Positive, [](const Tensor& x) { return pow(x, 0.5); }, [](double v) { return std::sqrt(v); }));
  c.push_back(unary("pow_neg_1_5", Kind::Positive, [](const Tensor& x) { return pow(x, -1.5); }, [](double v) { return std::pow(v, -1.5); }));
  c.push_back(unary("square", Kind::Normal, [](const Tensor& x) { return square(x); }, [](double v) { return v * v; }));
  c.push_back(unary("clamp", Kind::Normal, [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
                    [](double v) { return std::min(0.7, std::max(-0.5, v)); }));
  c.push_back(unary("clamp_min", Kind::Normal, [](const Tensor& x) { return clamp_min(x, 0.1); }, [](double v) { return std::max(0.1, v); }));
  c.push_back(unary("clamp_max", Kind::Normal, [](const Tensor& x) { return clamp_max(x, -0.2); }, [](double v) { return std::min(-0.2, v); }));
  c.push_back(unary("logical_not", Kind::Bool, [](const Tensor& x) { return logical_not(x); }, [](double v) { return v == 0; }, false));
  c.push_back(unary("neg_int", Kind::Int, [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, false));
  c.push_back(unary("abs_int", Kind::Int, [](const Tensor& x) { return abs(x); }, [](double v) { return std::fabs(v); }, false));
  c.push_back(unary("relu_int", Kind::Int, [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0; }, false));
  c.push_back(unary("exp_of_int_is_float", Kind::Int, [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, false));

  // ---- binary, broadcasting
  auto plus = [](double a, double b) { return a + b; };
  c.push_back(binary("add_row", {3, 4}, {4}, Kind::Normal, [](const Tensor& a, const Tensor& b) { return add(a, b); }, plus));
  c.push_back(binary("add_outer", {2, 1, 4}, {3, 1}, Kind::Normal, [](const Tensor& a, const Tensor& b) { return a + b; }, plus));
  c.push_back(binary("add_0dim", {3, 4}, {}, Kind::Normal, [](const Tensor& a, const Tensor& b) { return a + b; }, plus));
  c.push_back(binary("sub", {2, 1, 4}, {3, 1}, Kind::Normal, [](const Tensor& a, const Tensor& b) { return a - b; },
                     [](double a, double b) { return a - b; }));
  c.push_back(binary("mul", {3, 4}, {3, 1}, Kind::Normal, [](const Tensor& a, const Tensor& b) { return a * b; },
                     [](double a, double b) { return a * b; }));
  c.push_back(binary("mul_same_tensor", {3, 4}, {3, 4}, Kind::Normal, [](const Tensor& a, const Tensor&) { return a * a; },
                     [](double a, double) { return a * a; }));
  c.push_back(binary("div", {3, 4}, {4}, Kind::Positive, [](const Tensor& a, const Tensor& b) { return a / b; },
                     [](double a, double b) { return a / b; }));
  c.push_back(binary("minimum", {3, 4}, {1, 4}, Kind::Normal, [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
                     [](double a, double b) { return std::min(a, b); }));
  c.push_back(binary("maximum", {3, 4}, {3, 1}, Kind::Normal, [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
                     [](double a, double b) { return std::max(a, b); }));
  // ---- with numbers
  c.push_back(unary("add_scalar", Kind::Normal, [](const Tensor& x) { return x + 1.5; }, [](double v) { return v + 1.5; }));
  c.push_back(unary("sub_scalar", Kind::Normal, [](const Tensor& x) { return x - 0.25; }, [](double v) { return v - 0.25; }));
  c.push_back(unary("rsub_scalar", Kind::Normal, [](const Tensor& x) { return 2.0 - x; }, [](double v) { return 2.0 - v; }));
  c.push_back(unary("mul_scalar", Kind::Normal, [](const Tensor& x) { return x * -3.0; }, [](double v) { return v * -3.0; }));
  c.push_back(unary("scalar_mul", Kind::Normal, [](const Tensor& x) { return 0.5 * x; }, [](double v) { return v * 0.5; }));
  c.push_back(unary("div_scalar", Kind::Normal, [](const Tensor& x) { return x / 4.0; }, [](double v) { return v / 4.0; }));
  c.push_back(unary("rdiv_scalar", Kind::Positive, [](const Tensor& x) { return 3.0 / x; }, [](double v) { return 3.0 / v; }));
  // ---- integers and promotion
  c.push_back({"add_int", {{{3, 4}, Kind::Int}, {{4}, Kind::Int}}, [](V x) { return x[0] + x[1].to(kInt32); },
               [plus](H h) { return ref::zip(h[0], h[1], plus); }, false});
  c.push_back({"div_int_is_true_division", {{{3, 4}, Kind::Int}, {{4}, Kind::Int}},
               [](V x) { return div(x[0], add(x[1], 10.0)); },
               [](H h) { return ref::zip(h[0], h[1], [](double a, double b) { return a / (b + 10.0); }); }, false});
  c.push_back({"add_int_float_promotes", {{{3, 4}, Kind::Int}, {{4}, Kind::Normal}},
               [](V x) { return add(x[0], x[1]); }, [](H h) { return ref::zip(h[0], h[1], [](double a, double b) { return a + b; }); }});
  c.push_back(unary("int_times_fraction_is_float", Kind::Int, [](const Tensor& x) { return x * 0.5; }, [](double v) { return v * 0.5; }, false));
  // ---- comparisons and logic (ties on purpose)
  auto cmp = [&](const std::string& name, std::function<Tensor(const Tensor&, const Tensor&)> f, std::function<bool(double, double)> r) {
    c.push_back({name, {{{3, 4}, Kind::Ties}, {{4}, Kind::Ties}}, [f](V x) { return f(x[0], x[1]); },
                 [r](H h) { return ref::zip(h[0], h[1], [r](double a, double b) { return r(a, b) ? 1.0 : 0.0; }); }, false});
  };
  cmp("eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }, [](double a, double b) { return a == b; });
  cmp("ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }, [](double a, double b) { return a != b; });
  cmp("lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }, [](double a, double b) { return a < b; });
  cmp("le", [](const Tensor& a, const Tensor& b) { return le(a, b); }, [](double a, double b) { return a <= b; });
  cmp("gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }, [](double a, double b) { return a > b; });
  cmp("ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }, [](double a, double b) { return a >= b; });
  c.push_back(unary("gt_scalar", Kind::Ties, [](const Tensor& x) { return gt(x, 1.0); }, [](double v) { return v > 1.0; }, false));
  c.push_back(unary("eq_int_fraction", Kind::Int, [](const Tensor& x) { return eq(x, 0.5); }, [](double) { return 0.0; }, false));
  c.push_back(unary("le_int_scalar", Kind::Int, [](const Tensor& x) { return le(x, 1.0); }, [](double v) { return v <= 1.0; }, false));
  c.push_back({"logical_and", {{{3, 4}, Kind::Bool}, {{4}, Kind::Bool}}, [](V x) { return logical_and(x[0], x[1]); },
               [](H h) { return ref::zip(h[0], h[1], [](double a, double b) { return (a != 0 && b != 0) ? 1.0 : 0.0; }); }, false});
  c.push_back({"logical_or", {{{3, 4}, Kind::Bool}, {{3, 1}, Kind::Bool}}, [](V x) { return logical_or(x[0], x[1]); },
               [](H h) { return ref::zip(h[0], h[1], [](double a, double b) { return (a != 0 || b != 0) ? 1.0 : 0.0; }); }, false});
  // ---- where / masked_fill
  c.push_back({"where", {{{3, 4}, Kind::Bool}, {{3, 4}}, {{4}}}, [](V x) { return where(x[0], x[1], x[2]); },
               [](H h) { return ref::where(h[0], h[1], h[2]); }});
  c.push_back({"where_broadcast_cond", {{{4}, Kind::Bool}, {{3, 1}}, {{3, 4}}}, [](V x) { return where(x[0], x[1], x[2]); },
               [](H h) { return ref::where(h[0], h[1], h[2]); }});
  c.push_back({"where_scalar", {{{3, 4}, Kind::Bool}, {{3, 4}}}, [](V x) { return where(x[0], x[1], -2.0); },
               [](H h) { return ref::zip(h[0], h[1], [](double c, double a) { return c != 0 ? a : -2.0; }); }});
  c.push_back({"masked_fill", {{{3, 4}}, {{3, 4}, Kind::Bool}}, [](V x) { return masked_fill(x[0], x[1], 7.0); },
               [](H h) { return ref::zip(h[0], h[1], [](double a, double m) { return m != 0 ? 7.0 : a; }); }});
  // ---- larger than one parallel chunk, to cover the threaded path
  c.push_back({"add_large", {{{300, 257}}, {{257}}}, [](V x) { return x[0] + x[1]; },
               [](H h) { return ref::zip(h[0], h[1], [](double a, double b) { return a + b; }); }, false});
  // The cases that take bfloat16 and float16 (the others must refuse them: OpHalfTest).
  take_halves(c, {
      "abs", "add_0dim", "add_int_float_promotes", "add_large", "add_outer", "add_row", "add_scalar",
      "clamp", "clamp_max", "clamp_min", "div", "div_scalar", "eq", "exp", "ge", "gt", "gt_scalar", "le",
      "log", "lt", "masked_fill", "maximum", "minimum", "mul", "mul_same_tensor", "mul_scalar", "ne", "neg",
      "pow_2", "pow_3", "pow_half", "pow_neg_1_5", "rdiv_scalar", "relu", "rsqrt", "rsub_scalar",
      "scalar_mul", "sigmoid", "sign", "sqrt", "square", "sub", "sub_scalar", "tanh", "where",
      "where_broadcast_cond", "where_scalar"});
  return c;
}

TS_INSTANTIATE_OP_TABLE(Elementwise, cases());

// ---- bad input

TEST(ElementwiseErrors, BadShapesDtypesAndArguments) {
  EXPECT_THROW(add(zeros({3, 4}), zeros({3})), Error);
  EXPECT_THROW(mul(zeros({2, 3}), zeros({3, 2})), Error);
  EXPECT_THROW(where(zeros({3}), zeros({3}), zeros({3})), Error);  // condition must be bool
  EXPECT_THROW(masked_fill(zeros({3}), zeros({3}, kInt64), 1.0), Error);
  EXPECT_THROW(neg(zeros({3}, kBool)), Error);
  EXPECT_THROW(clamp(zeros({3}), std::nullopt, std::nullopt), Error);
  EXPECT_THROW(add(Tensor(), zeros({3})), Error);
  EXPECT_THROW(exp(Tensor()), Error);
  Tensor w = zeros({3}).requires_grad_();
  EXPECT_THROW(add_(w, ones({3})), Error);  // in-place on a tensor that requires grad
  try {
    add(zeros({3, 4}), zeros({5}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[3, 4]"), std::string::npos) << e.what();
  }
}

TEST(ElementwiseErrorsCuda, MixedDevicesAreRejected) {
  TS_SKIP_WITHOUT_CUDA();
  EXPECT_THROW(add(zeros({3}), zeros({3}, cuda_device())), Error);
}

TEST(Elementwise, InPlaceUpdatesForOptimizers) {
  Tensor p = from_vector<float>({1, 2, 3});
  add_(p, from_vector<float>({1, 1, 1}), -0.5);
  EXPECT_EQ(p.to_vector<float>(), (std::vector<float>{0.5f, 1.5f, 2.5f}));
  mul_(p, 2.0);
  EXPECT_EQ(p.to_vector<float>(), (std::vector<float>{1.f, 3.f, 5.f}));
  mul_(p, from_vector<float>({0, 1, 2}));
  EXPECT_EQ(p.to_vector<float>(), (std::vector<float>{0.f, 3.f, 10.f}));
  // A strided destination is updated in place through its strides.
  Tensor m = zeros({2, 2});
  Tensor col = m.select(1, 0);
  add_(col, ones({2}));
  EXPECT_EQ(m.to_vector<float>(), (std::vector<float>{1, 0, 1, 0}));
}

TEST(Elementwise, NanPropagatesThroughMinimumMaximumAndRelu) {
  const float nan = std::nanf("");
  Tensor a = from_vector<float>({nan, 1.f}), b = from_vector<float>({0.f, nan});
  std::vector<float> mn = minimum(a, b).to_vector<float>(), mx = maximum(a, b).to_vector<float>();
  EXPECT_TRUE(std::isnan(mn[0]) && std::isnan(mn[1]) && std::isnan(mx[0]) && std::isnan(mx[1]));
  EXPECT_TRUE(std::isnan(relu(a).to_vector<float>()[0]));
  EXPECT_TRUE(std::isnan(clamp(a, 0.0, 1.0).to_vector<float>()[0]));
}

}  // namespace
}  // namespace tessera::test

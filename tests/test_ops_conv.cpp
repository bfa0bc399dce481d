// Convolutions in the op table, with plain-loop references, plus the banded CPU path's gradients.
#include "kernels/conv.h"
#include "op_table.h"

namespace tessera::test {
namespace {

using V = const std::vector<Tensor>&;
using H = const std::vector<Host>&;

struct ConvArgs {
  Int2 stride = 1, padding = 0, dilation = 1, output_padding = 0;
  int64_t groups = 1;
};

Host conv2d_ref(const Host& x, const Host& w, const Host* b, const ConvArgs& a) {
  const int64_t N = x.shape[0], C = x.shape[1], Hh = x.shape[2], W = x.shape[3];
  const int64_t O = w.shape[0], Cg = w.shape[1], kh = w.shape[2], kw = w.shape[3], Og = O / a.groups;
  const int64_t Ho = (Hh + 2 * a.padding.h - a.dilation.h * (kh - 1) - 1) / a.stride.h + 1;
  const int64_t Wo = (W + 2 * a.padding.w - a.dilation.w * (kw - 1) - 1) / a.stride.w + 1;
  Host out = host_zeros({N, O, Ho, Wo});
  (void)C;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double acc = b ? b->v[o] : 0.0;
          const int64_t g = o / Og;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t h = oh * a.stride.h - a.padding.h + i * a.dilation.h;
                const int64_t ww = ow * a.stride.w - a.padding.w + j * a.dilation.w;
                if (h < 0 || h >= Hh || ww < 0 || ww >= W) continue;
                acc += x.at({n, g * Cg + c, h, ww}) * w.at({o, c, i, j});
              }
          out.at({n, o, oh, ow}) = acc;
        }
  return out;
}

Host conv_transpose2d_ref(const Host& x, const Host& w, const Host* b, const ConvArgs& a) {
  const int64_t N = x.shape[0], Cin = x.shape[1], Hh = x.shape[2], W = x.shape[3];
  const int64_t Coutg = w.shape[1], kh = w.shape[2], kw = w.shape[3], Cing = Cin / a.groups, Cout = Coutg * a.groups;
  const int64_t Ho = (Hh - 1) * a.stride.h - 2 * a.padding.h + a.dilation.h * (kh - 1) + a.output_padding.h + 1;
  const int64_t Wo = (W - 1) * a.stride.w - 2 * a.padding.w + a.dilation.w * (kw - 1) + a.output_padding.w + 1;
  Host out = host_zeros({N, Cout, Ho, Wo});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ci = 0; ci < Cin; ++ci)
      for (int64_t h = 0; h < Hh; ++h)
        for (int64_t ww = 0; ww < W; ++ww)
          for (int64_t co = 0; co < Coutg; ++co)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t oh = h * a.stride.h - a.padding.h + i * a.dilation.h;
                const int64_t ow = ww * a.stride.w - a.padding.w + j * a.dilation.w;
                if (oh < 0 || oh >= Ho || ow < 0 || ow >= Wo) continue;
                out.at({n, (ci / Cing) * Coutg + co, oh, ow}) += x.at({n, ci, h, ww}) * w.at({ci, co, i, j});
              }
  if (b)
    for (int64_t i = 0; i < out.numel(); ++i) out.v[i] += b->v[unravel(i, out.shape)[1]];
  return out;
}

OpCase conv_case(const std::string& name, Shape x, Shape w, bool bias, ConvArgs a, bool diff = true, double tol = 1e-4) {
  std::vector<In> in = {{x}, {w}};
  if (bias) in.push_back({{w[0]}});
  return {name, in,
          [a, bias](V t) { return conv2d(t[0], t[1], bias ? t[2] : Tensor(), a.stride, a.padding, a.dilation, a.groups); },
          [a, bias](H h) { return conv2d_ref(h[0], h[1], bias ? &h[2] : nullptr, a); }, diff, tol};
}

// conv2d_relu against relu of the plain-loop convolution (value and, by finite differences, gradients).
OpCase conv_relu_case(const std::string& name, Shape x, Shape w, bool bias, ConvArgs a, bool diff = true) {
  std::vector<In> in = {{x}, {w}};
  if (bias) in.push_back({{w[0]}});
  return {name, in,
          [a, bias](V t) { return conv2d_relu(t[0], t[1], bias ? t[2] : Tensor(), a.stride, a.padding, a.dilation, a.groups); },
          [a, bias](H h) {
            Host y = conv2d_ref(h[0], h[1], bias ? &h[2] : nullptr, a);
            for (double& v : y.v) v = v > 0 ? v : 0.0;
            return y;
          },
          diff, 1e-4};
}

// conv2d_scale_shift against the plain-loop convolution times scale plus shift (then ReLU); scale
// is a constant, so it stays out of gradcheck.
OpCase conv_scale_shift_case(const std::string& name, Shape x, Shape w, bool relu, ConvArgs a, bool diff = true) {
  return {name, {{x}, {w}, {{w[0]}, Kind::Positive, 0, false}, {{w[0]}}},
          [a, relu](V t) { return conv2d_scale_shift(t[0], t[1], t[2], t[3], relu, a.stride, a.padding, a.dilation, a.groups); },
          [a, relu](H h) {
            Host y = conv2d_ref(h[0], h[1], nullptr, a);
            for (int64_t i = 0; i < y.numel(); ++i) {
              const int64_t o = unravel(i, y.shape)[1];
              const double v = y.v[i] * h[2].v[o] + h[3].v[o];
              y.v[i] = relu && v < 0 ? 0.0 : v;
            }
            return y;
          },
          diff, 1e-4};
}

OpCase convt_case(const std::string& name, Shape x, Shape w, bool bias, ConvArgs a) {
  std::vector<In> in = {{x}, {w}};
  if (bias) in.push_back({{w[1] * a.groups}});
  return {name, in,
          [a, bias](V t) {
            return conv_transpose2d(t[0], t[1], bias ? t[2] : Tensor(), a.stride, a.padding, a.output_padding, a.groups,
                                    a.dilation);
          },
          [a, bias](H h) { return conv_transpose2d_ref(h[0], h[1], bias ? &h[2] : nullptr, a); }, true, 1e-4};
}

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  c.push_back(conv_case("conv3x3_pad1", {2, 3, 5, 6}, {4, 3, 3, 3}, true, {1, 1}));
  c.push_back(conv_case("conv_valid_no_bias", {1, 2, 6, 5}, {3, 2, 3, 3}, false, {}));
  c.push_back(conv_case("conv_stride2", {1, 2, 7, 7}, {3, 2, 3, 3}, true, {2, 1}));
  c.push_back(conv_case("conv_dilation2", {1, 2, 7, 8}, {2, 2, 3, 3}, true, {1, 2, 2}));
  c.push_back(conv_case("conv_groups2", {1, 4, 5, 5}, {6, 2, 3, 3}, true, {1, 1, 1, 0, 2}));
  c.push_back(conv_case("conv_depthwise", {1, 3, 5, 5}, {3, 1, 3, 3}, false, {1, 1, 1, 0, 3}));
  c.push_back(conv_case("conv_pointwise", {2, 4, 3, 5}, {3, 4, 1, 1}, true, {}));
  c.push_back(conv_case("conv_pointwise_stride2", {1, 3, 5, 5}, {2, 3, 1, 1}, true, {2}));
  c.push_back(conv_case("conv_rect", {1, 2, 6, 7}, {2, 2, 2, 3}, true, {{2, 1}, {0, 1}, {1, 2}}));
  c.push_back(conv_case("conv_7x7_stride2_pad3", {1, 3, 9, 9}, {2, 3, 7, 7}, false, {2, 3}, false));
  c.push_back(conv_case("conv_banded_large", {1, 64, 70, 70}, {4, 64, 3, 3}, true, {1, 1}, false, 1e-4));
  c.push_back(conv_relu_case("conv_relu_pad1", {2, 3, 5, 6}, {4, 3, 3, 3}, true, {1, 1}));
  c.push_back(conv_relu_case("conv_relu_no_bias_groups2", {1, 4, 5, 5}, {6, 2, 3, 3}, false, {1, 1, 1, 0, 2}));
  c.push_back(conv_relu_case("conv_relu_pointwise", {2, 4, 3, 5}, {3, 4, 1, 1}, true, {}));
  c.push_back(conv_relu_case("conv_relu_banded_large", {1, 64, 70, 70}, {4, 64, 3, 3}, true, {1, 1}, false));
  // Winograd F(2x2, 3x3) on the CPU (>= 16 channels each way, >= 64 tiles): odd output sizes,
  // padding 0-2, several images per GEMM; one small enough for gradcheck (backward-input too).
  c.push_back(conv_case("conv_winograd_pad1", {2, 16, 11, 13}, {16, 16, 3, 3}, true, {1, 1}, false));
  c.push_back(conv_case("conv_winograd_pad2_no_bias", {2, 17, 7, 9}, {20, 17, 3, 3}, false, {1, 2}, false));
  c.push_back(conv_case("conv_winograd_gradcheck", {2, 16, 8, 16}, {16, 16, 3, 3}, true, {1, 1}));
  c.push_back(conv_relu_case("conv_relu_winograd_valid", {1, 17, 19, 20}, {18, 17, 3, 3}, true, {}, false));
  c.push_back(conv_scale_shift_case("conv_scale_shift_stride2", {2, 3, 7, 8}, {4, 3, 3, 3}, false, {2, 1}));
  c.push_back(conv_scale_shift_case("conv_scale_shift_relu_pointwise", {2, 4, 3, 5}, {3, 4, 1, 1}, true, {}));
  c.push_back(conv_scale_shift_case("conv_scale_shift_relu_winograd", {2, 16, 11, 13}, {16, 16, 3, 3}, true, {1, 1}, false));
  c.push_back(convt_case("convt_2x2_stride2", {1, 4, 3, 3}, {4, 3, 2, 2}, true, {2}));
  c.push_back(convt_case("convt_3x3_s2_p1_op1", {1, 2, 3, 4}, {2, 3, 3, 3}, true, {2, 1, 1, 1}));
  c.push_back(convt_case("convt_groups_dilation", {1, 4, 3, 3}, {4, 1, 2, 2}, false, {1, 0, 2, 0, 2}));
  c.push_back(convt_case("convt_rect", {2, 2, 3, 2}, {2, 2, 3, 2}, true, {{2, 1}, {1, 0}, 1, {1, 0}}));
  take_halves_by_prefix(c, {"conv"});
  // bfloat16 Winograd rounds its transformed input and filter tiles (sums of up to 4 and 9 values)
  // to bfloat16 too: every output carries a few roundings of products as large as the largest
  // output, so its error is stated against that magnitude: 2^-6 of it (measured: 2^-7.5).
  for (OpCase& k : c)
    if (k.name.find("winograd") != std::string::npos) {
      k.bf16_tol = 1.0 / 64;
      k.bf16_tol_of_largest = true;
    }
  return c;
}

TS_INSTANTIATE_OP_TABLE(Conv, cases());

// The banded CPU path (column buffer split into bands of output rows) against plain loops, for all
// three gradients.
TEST(Conv, BandedGradientsMatchPlainLoops) {
  Generator gen(5);
  Tensor x = randn({1, 64, 40, 70}, kFloat64, &gen).requires_grad_();
  Tensor w = randn({3, 64, 3, 3}, kFloat64, &gen).requires_grad_();
  Tensor b = randn({3}, kFloat64, &gen).requires_grad_();
  Tensor out = conv2d(x, w, b, 1, {2, 1}, {2, 1});
  Tensor wout = randn(out.shape(), kFloat64, &gen);
  sum(mul(out, wout)).backward();
  const Host hx = host(x), hw = host(w), hg = host(wout);
  Host gx = host_zeros(hx.shape), gw = host_zeros(hw.shape);
  const int64_t Ho = out.size(2), Wo = out.size(3);
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        for (int64_t c = 0; c < 64; ++c)
          for (int64_t i = 0; i < 3; ++i)
            for (int64_t j = 0; j < 3; ++j) {
              const int64_t h = oh - 2 + 2 * i, ww = ow - 1 + j;
              if (h < 0 || h >= 40 || ww < 0 || ww >= 70) continue;
              gx.at({0, c, h, ww}) += hg.at({0, o, oh, ow}) * hw.at({o, c, i, j});
              gw.at({o, c, i, j}) += hg.at({0, o, oh, ow}) * hx.at({0, c, h, ww});
            }
  EXPECT_TRUE(close(x.grad(), gx, 1e-9, 1e-9));
  EXPECT_TRUE(close(w.grad(), gw, 1e-9, 1e-9));
  EXPECT_TRUE(close(b.grad(), ref::sum(hg, {0, 2, 3}, false), 1e-9, 1e-9));
}

// The fused op gives exactly what relu(conv2d(...)) gives, values and gradients, in float32 too.
TEST(Conv, ReluFusedEqualsConvThenRelu) {
  Generator gen(9);
  Tensor x = randn({2, 16, 30, 33}, kFloat32, &gen).requires_grad_();
  Tensor w = randn({8, 16, 3, 3}, kFloat32, &gen).requires_grad_();
  Tensor b = randn({8}, kFloat32, &gen).requires_grad_();
  Tensor wout = randn({2, 8, 28, 31}, kFloat32, &gen);
  Tensor fused = conv2d_relu(x, w, b);
  sum(mul(fused, wout)).backward();
  const Tensor gx = x.grad().clone(), gw = w.grad().clone(), gb = b.grad().clone();
  for (Tensor* t : {&x, &w, &b}) t->set_grad(Tensor());
  Tensor plain = relu(conv2d(x, w, b));
  sum(mul(plain, wout)).backward();
  EXPECT_TRUE(equal(fused, plain));
  const int64_t positive = sum(gt(fused, 0.0).to(kInt64)).item<int64_t>();
  EXPECT_GT(positive, fused.numel() / 4);  // both sides of the kink are exercised
  EXPECT_LT(positive, fused.numel() * 3 / 4);
  EXPECT_TRUE(equal(gx, x.grad()));
  EXPECT_TRUE(equal(gw, w.grad()));
  EXPECT_TRUE(equal(gb, b.grad()));
  EXPECT_EQ(fused.grad_fn()->name(), "Conv2dReluBackward");
  EXPECT_THROW(conv2d_relu(x, zeros({8, 3, 3, 3})), Error);
}

Conv2dGeometry conv3x3_geometry(const Shape& x, int64_t O, int64_t pad) {
  Conv2dGeometry g{};
  g.N = x[0], g.C = x[1], g.H = x[2], g.W = x[3], g.O = O, g.kh = 3, g.kw = 3;
  g.Ho = g.H + 2 * pad - 2, g.Wo = g.W + 2 * pad - 2;
  g.stride_h = g.stride_w = 1, g.pad_h = g.pad_w = pad, g.dil_h = g.dil_w = 1, g.groups = 1;
  return g;
}

// The Winograd path (forward and backward-input) against plain float64 loops, in float64 and
// float32, for padding 0, 1 and 2 with odd output sizes; and against the im2col path it replaces.
TEST(Conv, WinogradMatchesPlainLoops) {
  const Shape xs = {2, 16, 13, 15};
  const int64_t O = 18;
  for (int64_t pad : {0, 1, 2}) {
    Conv2dGeometry g = conv3x3_geometry(xs, O, pad), back = g;  // back: grad_x as a convolution of grad_out
    back.C = g.O, back.O = g.C, back.H = g.Ho, back.W = g.Wo, back.Ho = g.H, back.Wo = g.W, back.pad_h = back.pad_w = 2 - pad;
    ASSERT_TRUE(conv2d_winograd_applies(g)) << "pad " << pad;
    ASSERT_TRUE(conv2d_winograd_applies(back)) << "pad " << pad;
    for (DType dt : {kFloat64, kFloat32}) {
      SCOPED_TRACE(std::string("pad ") + std::to_string(pad) + (dt == kFloat32 ? " float32" : " float64"));
      Generator gen(11 + pad);
      Tensor x = randn(xs, dt, &gen).requires_grad_();
      Tensor w = randn({O, 16, 3, 3}, dt, &gen).requires_grad_();
      Tensor b = randn({O}, dt, &gen);
      Tensor out = conv2d(x, w, b, 1, pad);
      Tensor wout = randn(out.shape(), dt, &gen);
      sum(mul(out, wout)).backward();
      const Host hx = host(x), hw = host(w), hb = host(b), hg = host(wout);
      ConvArgs a;
      a.padding = pad;
      Host gx = host_zeros(hx.shape), gw = host_zeros(hw.shape);
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t o = 0; o < O; ++o)
          for (int64_t oh = 0; oh < g.Ho; ++oh)
            for (int64_t ow = 0; ow < g.Wo; ++ow)
              for (int64_t c = 0; c < g.C; ++c)
                for (int64_t i = 0; i < 3; ++i)
                  for (int64_t j = 0; j < 3; ++j) {
                    const int64_t h = oh - pad + i, ww = ow - pad + j;
                    if (h < 0 || h >= g.H || ww < 0 || ww >= g.W) continue;
                    gx.at({n, c, h, ww}) += hg.at({n, o, oh, ow}) * hw.at({o, c, i, j});
                    gw.at({o, c, i, j}) += hg.at({n, o, oh, ow}) * hx.at({n, c, h, ww});
                  }
      const double tol = dt == kFloat64 ? 1e-10 : 2e-4;
      EXPECT_TRUE(close(out, conv2d_ref(hx, hw, &hb, a), tol, tol));
      EXPECT_TRUE(close(x.grad(), gx, tol, tol));
      EXPECT_TRUE(close(w.grad(), gw, tol, tol));
      // The same convolution through im2col + GEMM: equal up to rounding.
      set_cpu_winograd(false);
      Tensor direct = conv2d(x.detach(), w.detach(), b, 1, pad);
      set_cpu_winograd(true);
      EXPECT_TRUE(close(out, direct, tol, tol));
    }
  }
  // Too few channels or tiles, a stride, a dilation or groups: im2col.
  EXPECT_FALSE(conv2d_winograd_applies(conv3x3_geometry({2, 8, 13, 15}, 18, 1)));
  EXPECT_FALSE(conv2d_winograd_applies(conv3x3_geometry({1, 16, 9, 9}, 16, 1)));
  Conv2dGeometry strided = conv3x3_geometry(xs, O, 1);
  strided.stride_h = 2;
  EXPECT_FALSE(conv2d_winograd_applies(strided));
  Conv2dGeometry grouped = conv3x3_geometry(xs, O, 1);
  grouped.groups = 2;
  EXPECT_FALSE(conv2d_winograd_applies(grouped));
}

// conv2d_scale_shift is conv2d -> frozen_batch_norm (-> relu) in one pass: same values (up to the
// last bit where the compiler contracts both multiply-adds alike) and gradients.
TEST(Conv, ScaleShiftEqualsConvThenFrozenBatchNorm) {
  Generator gen(21);
  for (bool with_relu : {false, true}) {
    Tensor x = randn({2, 16, 20, 21}, kFloat32, &gen).requires_grad_();
    Tensor w = randn({24, 16, 3, 3}, kFloat32, &gen).requires_grad_();
    Tensor bw = add(rand({24}, kFloat32, &gen), 0.5), bb = randn({24}, kFloat32, &gen), rm = randn({24}, kFloat32, &gen);
    Tensor rv = add(rand({24}, kFloat32, &gen), 0.5);
    Tensor scale = mul(bw, rsqrt(add(rv, 1e-5))), shift = sub(bb, mul(rm, scale));
    Tensor fused = conv2d_scale_shift(x, w, scale, shift, with_relu, 1, 1);
    Tensor wout = randn(fused.shape(), kFloat32, &gen);
    sum(mul(fused, wout)).backward();
    const Tensor gx = x.grad().clone(), gw = w.grad().clone();
    x.set_grad(Tensor());
    w.set_grad(Tensor());
    Tensor plain = frozen_batch_norm(conv2d(x, w, Tensor(), 1, 1), bw, bb, rm, rv, 1e-5);
    if (with_relu) plain = relu(plain);
    sum(mul(plain, wout)).backward();
    EXPECT_TRUE(close(fused, plain, 1e-6, 1e-6));
    EXPECT_TRUE(close(gx, x.grad(), 1e-5, 1e-5));
    EXPECT_TRUE(close(gw, w.grad(), 1e-4, 1e-5));
  }
  Tensor x = randn({1, 4, 5, 5}, kFloat32, &gen), w = randn({2, 4, 3, 3}, kFloat32, &gen), s = ones({2});
  EXPECT_THROW(conv2d_scale_shift(x, w, ones({3}), zeros({2}), false), Error);
  EXPECT_THROW(conv2d_scale_shift(x, w, s, Tensor(), false), Error);
  EXPECT_THROW(conv2d_scale_shift(x, w, s.to(kFloat64), zeros({2}), false), Error);
  EXPECT_THROW(conv2d_scale_shift(x, w, ones({2}).requires_grad_(), zeros({2}), false), Error);
}

TEST(ConvErrors, BadShapesAndArguments) {
  Tensor x = zeros({1, 4, 5, 5}), w = zeros({2, 4, 3, 3});
  EXPECT_THROW(conv2d(zeros({4, 5, 5}), w), Error);
  EXPECT_THROW(conv2d(x, zeros({2, 3, 3, 3})), Error);
  EXPECT_THROW(conv2d(x, w, zeros({3})), Error);
  EXPECT_THROW(conv2d(x, w, Tensor(), 0), Error);
  EXPECT_THROW(conv2d(x, w, Tensor(), 1, -1), Error);
  EXPECT_THROW(conv2d(x, w, Tensor(), 1, 0, 0), Error);
  EXPECT_THROW(conv2d(x, zeros({3, 2, 3, 3}), Tensor(), 1, 0, 1, 2), Error);  // 3 outputs, 2 groups
  EXPECT_THROW(conv2d(x, zeros({2, 4, 7, 7})), Error);                        // kernel larger than input
  EXPECT_THROW(conv2d(x, w.to(kFloat64)), Error);
  EXPECT_THROW(conv2d(x.to(kInt64), w.to(kInt64)), Error);
  EXPECT_THROW(conv_transpose2d(x, zeros({3, 2, 2, 2})), Error);
  EXPECT_THROW(conv_transpose2d(x, zeros({4, 2, 2, 2}), Tensor(), 2, 0, 2), Error);  // output_padding >= stride
}

}  // namespace
}  // namespace tessera::test

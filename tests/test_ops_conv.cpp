// Convolutions in the op table, with plain-loop references, plus the banded CPU path's gradients.
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
  c.push_back(convt_case("convt_2x2_stride2", {1, 4, 3, 3}, {4, 3, 2, 2}, true, {2}));
  c.push_back(convt_case("convt_3x3_s2_p1_op1", {1, 2, 3, 4}, {2, 3, 3, 3}, true, {2, 1, 1, 1}));
  c.push_back(convt_case("convt_groups_dilation", {1, 4, 3, 3}, {4, 1, 2, 2}, false, {1, 0, 2, 0, 2}));
  c.push_back(convt_case("convt_rect", {2, 2, 3, 2}, {2, 2, 3, 2}, true, {{2, 1}, {1, 0}, 1, {1, 0}}));
  return c;
}

INSTANTIATE_TEST_SUITE_P(Conv, OpTest, ::testing::ValuesIn(cases()), case_name);

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

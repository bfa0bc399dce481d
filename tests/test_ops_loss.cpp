// Losses and dropout: plain-loop references of PyTorch's definitions.
#include "op_table.h"

namespace tessera::test {
namespace {

using V = const std::vector<Tensor>&;
using H = const std::vector<Host>&;

// Per-element -log softmax(x)[target] * weight over [N, C, d...]; returns (losses, weights).
std::pair<std::vector<double>, std::vector<double>> ce_terms(const Host& x, const Host& t, const Host* w, int64_t ignore) {
  const int64_t N = x.shape[0], C = x.shape[1], S = x.numel() / (N * C);
  std::vector<double> loss, weight;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < S; ++s) {
      const int64_t target = static_cast<int64_t>(t.v[n * S + s]);
      if (target == ignore) {
        loss.push_back(0);
        weight.push_back(0);
        continue;
      }
      double mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x.v[(n * C + c) * S + s]);
      for (int64_t c = 0; c < C; ++c) sum += std::exp(x.v[(n * C + c) * S + s] - mx);
      const double wt = w ? w->v[target] : 1.0;
      loss.push_back(-(x.v[(n * C + target) * S + s] - mx - std::log(sum)) * wt);
      weight.push_back(wt);
    }
  return {loss, weight};
}

Host scalar(double v) { return Host{{}, {v}}; }
double total(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  c.push_back({"cross_entropy_mean", {{{5, 4}}, {{5}, Kind::Index, 4}}, [](V t) { return cross_entropy(t[0], t[1]); },
               [](H h) {
                 auto [l, w] = ce_terms(h[0], h[1], nullptr, -100);
                 return scalar(total(l) / total(w));
               }});
  c.push_back({"cross_entropy_weighted_ignore", {{{6, 3}}, {{6}, Kind::Index, 3}, {{3}, Kind::Positive, 0, false}},
               [](V t) {
                 Tensor target = t[1].clone();
                 target.narrow(0, 1, 2).fill_(-1);  // two ignored rows
                 return cross_entropy(t[0], target, t[2], -1);
               },
               [](H h) {
                 Host target = h[1];
                 target.v[1] = target.v[2] = -1;
                 auto [l, w] = ce_terms(h[0], target, &h[2], -1);
                 return scalar(total(l) / total(w));
               }});
  c.push_back({"cross_entropy_2d_sum", {{{2, 3, 2, 3}}, {{2, 2, 3}, Kind::Index, 3}},
               [](V t) { return cross_entropy(t[0], t[1], Tensor(), -100, "sum"); },
               [](H h) { return scalar(total(ce_terms(h[0], h[1], nullptr, -100).first)); }});
  c.push_back({"cross_entropy_none", {{{4, 5}}, {{4}, Kind::Index, 5}},
               [](V t) { return cross_entropy(t[0], t[1], Tensor(), -100, "none"); },
               [](H h) {
                 auto l = ce_terms(h[0], h[1], nullptr, -100).first;
                 return Host{{4}, l};
               }});
  c.push_back({"pixel_weighted_cross_entropy", {{{2, 2, 3, 3}}, {{2, 3, 3}, Kind::Index, 2}, {{2, 3, 3}, Kind::Positive, 0, false}},
               [](V t) { return pixel_weighted_cross_entropy(t[0], t[1], t[2]); },
               [](H h) {
                 auto l = ce_terms(h[0], h[1], nullptr, -100).first;
                 double s = 0;
                 for (size_t i = 0; i < l.size(); ++i) s += l[i] * h[2].v[i];
                 return scalar(s / static_cast<double>(l.size()));
               }});
  auto bce = [](double x, double y, double w, double pw) {
    const double lw = 1 + (pw - 1) * y;
    return w * ((1 - y) * x + lw * (std::log1p(std::exp(-std::fabs(x))) + std::max(-x, 0.0)));
  };
  c.push_back({"bce_with_logits", {{{3, 4}}, {{3, 4}, Kind::Positive, 0, false}},
               [](V t) { return binary_cross_entropy_with_logits(mul(t[0], 3.0), div(t[1], 2.0)); },
               [=](H h) {
                 double s = 0;
                 for (int64_t i = 0; i < 12; ++i) s += bce(3 * h[0].v[i], h[1].v[i] / 2, 1, 1);
                 return scalar(s / 12);
               }});
  c.push_back({"bce_with_logits_weights", {{{3, 4}}, {{3, 4}, Kind::Bool}, {{3, 4}, Kind::Positive, 0, false}, {{4}, Kind::Positive, 0, false}},
               [](V t) { return binary_cross_entropy_with_logits(t[0], t[1].to(t[0].dtype()), t[2], t[3], "sum"); },
               [=](H h) {
                 double s = 0;
                 for (int64_t i = 0; i < 12; ++i) s += bce(h[0].v[i], h[1].v[i], h[2].v[i], h[3].v[i % 4]);
                 return scalar(s);
               }});
  auto sl1 = [](double d, double beta) {
    const double a = std::fabs(d);
    return a < beta ? 0.5 * d * d / beta : a - 0.5 * beta;
  };
  c.push_back({"smooth_l1", {{{4, 4}}, {{4, 4}}}, [](V t) { return smooth_l1_loss(t[0], t[1], 1.0 / 9); },
               [=](H h) {
                 double s = 0;
                 for (int64_t i = 0; i < 16; ++i) s += sl1(h[0].v[i] - h[1].v[i], 1.0 / 9);
                 return scalar(s / 16);
               }});
  c.push_back({"smooth_l1_beta_1_none", {{{6}}, {{6}}}, [](V t) { return smooth_l1_loss(t[0], t[1], 1.0, "none"); },
               [=](H h) {
                 Host r = h[0];
                 for (int64_t i = 0; i < 6; ++i) r.v[i] = sl1(h[0].v[i] - h[1].v[i], 1.0);
                 return r;
               }});
  c.push_back({"l1", {{{3, 5}}, {{3, 5}}}, [](V t) { return l1_loss(t[0], t[1], "sum"); },
               [](H h) {
                 double s = 0;
                 for (int64_t i = 0; i < 15; ++i) s += std::fabs(h[0].v[i] - h[1].v[i]);
                 return scalar(s);
               }});
  // The cases that take bfloat16 and float16 (the others must refuse them: OpHalfTest).
  take_halves(c, {
      "bce_with_logits", "bce_with_logits_weights", "l1", "smooth_l1", "smooth_l1_beta_1_none"});
  take_halves_by_prefix(c, {"cross_entropy", "pixel_weighted_cross_entropy"});
  return c;
}

TS_INSTANTIATE_OP_TABLE(Loss, cases());

TEST(LossErrors, BadTargetsShapesAndReductions) {
  Tensor x = zeros({4, 3});
  EXPECT_THROW(cross_entropy(x, from_vector<int64_t>({0, 1, 3, 0})), Error);   // class 3 of 3
  EXPECT_THROW(cross_entropy(x, from_vector<int64_t>({0, 1, -2, 0})), Error);  // negative, not ignore_index
  EXPECT_THROW(cross_entropy(x, zeros({4}, kFloat32)), Error);                  // float target
  EXPECT_THROW(cross_entropy(x, zeros({3}, kInt64)), Error);                    // wrong shape
  EXPECT_THROW(cross_entropy(x, zeros({4}, kInt64), zeros({2})), Error);        // weight size
  EXPECT_THROW(cross_entropy(x, zeros({4}, kInt64), Tensor(), -100, "avg"), Error);
  EXPECT_THROW(binary_cross_entropy_with_logits(x, zeros({4, 2})), Error);
  EXPECT_THROW(smooth_l1_loss(x, x, -1.0), Error);
  EXPECT_THROW(pixel_weighted_cross_entropy(zeros({1, 2, 2, 2}), zeros({1, 2, 2}, kInt64), zeros({1, 2, 3})), Error);
  // Every target ignored: the mean is 0/0 = NaN, as PyTorch.
  EXPECT_TRUE(std::isnan(cross_entropy(x, full({4}, -100, kInt64)).item<float>()));
}

TEST(Dropout, ScalesKeptElementsAndIsReproducible) {
  Tensor x = ones({100000});
  Generator g1(7), g2(7);
  Tensor a = dropout(x, 0.3, true, &g1), b = dropout(x, 0.3, true, &g2);
  EXPECT_TRUE(equal(a, b));
  const std::vector<float> v = a.to_vector<float>();
  int64_t kept = 0;
  for (float f : v) {
    ASSERT_TRUE(f == 0.f || std::fabs(f - 1.f / 0.7f) < 1e-6f);
    kept += f != 0.f;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 100000, 0.7, 0.01);
  EXPECT_TRUE(equal(dropout(x, 0.3, false), x));   // evaluation: identity
  EXPECT_EQ(sum(dropout(x, 1.0)).item<float>(), 0.f);
  EXPECT_THROW(dropout(x, 1.5), Error);
  // The gradient is the same mask and scale.
  Tensor w = ones({1000}).requires_grad_();
  Generator g3(9);
  Tensor y = dropout(w, 0.5, true, &g3);
  sum(y).backward();
  EXPECT_TRUE(equal(w.grad(), y.detach()));
}

TEST(DropoutCuda, DrawsTheSameMask) {
  TS_SKIP_WITHOUT_CUDA();
  Generator g1(21), g2(21);
  Tensor x = randn({4097});
  EXPECT_TRUE(equal(dropout(x.cuda(), 0.4, true, &g1).cpu(), dropout(x, 0.4, true, &g2)));
}

}  // namespace
}  // namespace tessera::test

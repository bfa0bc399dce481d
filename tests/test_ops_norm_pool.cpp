// Pooling and batch normalisation in the op table, and the running-statistics update.
#include "op_table.h"

namespace tessera::test {
namespace {

using V = const std::vector<Tensor>&;
using H = const std::vector<Host>&;

Host max_pool_ref(const Host& x_in, Int2 k, Int2 s, Int2 p, Int2 d, bool ceil_mode, bool want_indices) {
  Host x = x_in;
  if (x.shape.size() == 3) x.shape.insert(x.shape.begin(), 1);
  auto out_size = [&](int64_t in, int64_t kk, int64_t pp, int64_t ss, int64_t dd) {
    const double span = static_cast<double>(in + 2 * pp - dd * (kk - 1) - 1) / static_cast<double>(ss);
    int64_t o = static_cast<int64_t>(ceil_mode ? std::ceil(span) : std::floor(span)) + 1;
    if (ceil_mode && (o - 1) * ss >= in + pp) --o;
    return o;
  };
  const int64_t N = x.shape[0], C = x.shape[1], Hh = x.shape[2], W = x.shape[3];
  const int64_t Ho = out_size(Hh, k.h, p.h, s.h, d.h), Wo = out_size(W, k.w, p.w, s.w, d.w);
  Host out = host_zeros({N, C, Ho, Wo});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double best = -INFINITY;
          int64_t arg = -1;
          for (int64_t i = 0; i < k.h; ++i)
            for (int64_t j = 0; j < k.w; ++j) {
              const int64_t h = oh * s.h - p.h + i * d.h, w = ow * s.w - p.w + j * d.w;
              if (h < 0 || h >= Hh || w < 0 || w >= W) continue;
              const double v = x.at({n, c, h, w});
              if (arg < 0 || v > best) {
                best = v;
                arg = h * W + w;
              }
            }
          out.at({n, c, oh, ow}) = want_indices ? static_cast<double>(arg) : best;
        }
  if (x_in.shape.size() == 3) out.shape.erase(out.shape.begin());
  return out;
}

OpCase pool_case(const std::string& name, Shape x, Int2 k, std::optional<Int2> s, Int2 p, Int2 d, bool ceil_mode,
                 Kind kind = Kind::Normal) {
  const Int2 stride = s.value_or(k);
  OpCase values{name, {{x, kind}}, [=](V t) { return max_pool2d(t[0], k, s, p, d, ceil_mode); },
                [=](H h) { return max_pool_ref(h[0], k, stride, p, d, ceil_mode, false); }, kind != Kind::Ties};
  return values;
}

OpCase pool_indices_case(const std::string& name, Shape x, Int2 k, std::optional<Int2> s, Int2 p, Int2 d, bool ceil_mode,
                         Kind kind) {
  const Int2 stride = s.value_or(k);
  return {name, {{x, kind}}, [=](V t) { return max_pool2d_with_indices(t[0], k, s, p, d, ceil_mode).second; },
          [=](H h) { return max_pool_ref(h[0], k, stride, p, d, ceil_mode, true); }, false};
}

// Per-channel mean and biased variance of x [N, C, ...].
std::pair<std::vector<double>, std::vector<double>> channel_stats(const Host& x) {
  const int64_t C = x.shape[1];
  std::vector<double> mean(C, 0), var(C, 0), count(C, 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = unravel(i, x.shape)[1];
    mean[c] += x.v[i];
    count[c] += 1;
  }
  for (int64_t c = 0; c < C; ++c) mean[c] /= count[c];
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = unravel(i, x.shape)[1];
    var[c] += (x.v[i] - mean[c]) * (x.v[i] - mean[c]);
  }
  for (int64_t c = 0; c < C; ++c) var[c] /= count[c];
  return {mean, var};
}

Host bn_ref(const Host& x, const std::vector<double>& mean, const std::vector<double>& var, const Host* w, const Host* b,
            double eps) {
  Host y = x;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = unravel(i, x.shape)[1];
    y.v[i] = (x.v[i] - mean[c]) / std::sqrt(var[c] + eps) * (w ? w->v[c] : 1.0) + (b ? b->v[c] : 0.0);
  }
  return y;
}

// Group norm by plain loops: each (sample, group) normalised with its own mean and biased variance.
Host gn_ref(const Host& x, int64_t G, const Host* w, const Host* b, double eps) {
  const int64_t N = x.shape[0], C = x.shape[1], per = x.numel() / (N * C);
  Host y = x;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t c0 = g * (C / G), count = (C / G) * per, first = (n * C + c0) * per;
      double m = 0, v = 0;
      for (int64_t i = 0; i < count; ++i) m += x.v[first + i];
      m /= static_cast<double>(count);
      for (int64_t i = 0; i < count; ++i) v += (x.v[first + i] - m) * (x.v[first + i] - m);
      v /= static_cast<double>(count);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t c = c0 + i / per;
        y.v[first + i] = (x.v[first + i] - m) / std::sqrt(v + eps) * (w ? w->v[c] : 1.0) + (b ? b->v[c] : 0.0);
      }
    }
  return y;
}

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  c.push_back(pool_case("maxpool_2x2", {2, 3, 6, 8}, 2, std::nullopt, 0, 1, false));
  c.push_back(pool_case("maxpool_2x2_odd", {1, 2, 7, 9}, 2, std::nullopt, 0, 1, false));  // last row, column uncovered
  c.push_back(pool_case("maxpool_3x3_s2_p1", {1, 2, 7, 7}, 3, 2, 1, 1, false));
  c.push_back(pool_case("maxpool_ceil_mode", {1, 2, 7, 6}, 2, 2, 0, 1, true));
  c.push_back(pool_case("maxpool_ceil_pad", {1, 1, 8, 9}, 3, 2, 1, 1, true));
  c.push_back(pool_case("maxpool_dilation", {1, 2, 9, 8}, 2, 1, 0, 2, false));
  c.push_back(pool_case("maxpool_rect", {1, 2, 7, 9}, {2, 3}, {{1, 2}}, {1, 0}, 1, false));
  c.push_back(pool_case("maxpool_overlap_1x1_stride", {1, 1, 5, 5}, 3, 1, 1, 1, false));
  c.push_back(pool_case("maxpool_3d_input", {3, 4, 4}, 2, std::nullopt, 0, 1, false));
  c.push_back(pool_indices_case("maxpool_indices_ties_first", {1, 2, 6, 6}, 2, std::nullopt, 0, 1, false, Kind::Ties));
  c.push_back(pool_indices_case("maxpool_indices_ceil", {1, 2, 7, 7}, 3, 2, 1, 1, true, Kind::Normal));
  c.push_back(pool_case("maxpool_large", {1, 8, 90, 90}, 2, std::nullopt, 0, 1, false));
  c.back().differentiable = false;

  const double eps = 1e-5;
  c.push_back({"batchnorm_train", {{{4, 3, 2, 3}}, {{3}}, {{3}}},
               [=](V t) { return batch_norm(t[0], Tensor(), Tensor(), t[1], t[2], true, 0.1, eps); },
               [=](H h) {
                 auto [m, v] = channel_stats(h[0]);
                 return bn_ref(h[0], m, v, &h[1], &h[2], eps);
               }, true, 1e-4});
  c.push_back({"batchnorm_train_no_affine_2d", {{{6, 4}}},
               [=](V t) { return batch_norm(t[0], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, eps); },
               [=](H h) {
                 auto [m, v] = channel_stats(h[0]);
                 return bn_ref(h[0], m, v, nullptr, nullptr, eps);
               }, true, 1e-4});
  c.push_back({"batchnorm_eval", {{{2, 3, 2, 2}}, {{3}, Kind::Normal, 0, false}, {{3}, Kind::Positive, 0, false}, {{3}}, {{3}}},
               [=](V t) { return batch_norm(t[0], t[1], t[2], t[3], t[4], false, 0.1, eps); },
               [=](H h) { return bn_ref(h[0], h[1].v, h[2].v, &h[3], &h[4], eps); }});
  c.push_back({"frozen_batchnorm", {{{2, 3, 2, 2}}, {{3}, Kind::Normal, 0, false}, {{3}, Kind::Normal, 0, false},
                                    {{3}, Kind::Normal, 0, false}, {{3}, Kind::Positive, 0, false}},
               [=](V t) { return frozen_batch_norm(t[0], t[1], t[2], t[3], t[4]); },
               [=](H h) { return bn_ref(h[0], h[3].v, h[4].v, &h[1], &h[2], eps); }});
  c.push_back({"groupnorm_2_groups", {{{3, 4, 2, 3}}, {{4}}, {{4}}},
               [=](V t) { return group_norm(t[0], 2, t[1], t[2], eps); },
               [=](H h) { return gn_ref(h[0], 2, &h[1], &h[2], eps); }, true, 1e-4});
  c.push_back({"groupnorm_instance_like_no_affine", {{{2, 3, 5}}},
               [=](V t) { return group_norm(t[0], 3); }, [=](H h) { return gn_ref(h[0], 3, nullptr, nullptr, eps); }, true, 1e-4});
  c.push_back({"groupnorm_one_group_large", {{{2, 8, 30, 40}}, {{8}}, {{8}}},
               [=](V t) { return group_norm(t[0], 1, t[1], t[2], eps); },
               [=](H h) { return gn_ref(h[0], 1, &h[1], &h[2], eps); }, false, 1e-4});
  c.push_back({"batchnorm_train_large", {{{2, 5, 40, 60}}, {{5}}, {{5}}},
               [=](V t) { return batch_norm(t[0], Tensor(), Tensor(), t[1], t[2], true, 0.1, eps); },
               [=](H h) {
                 auto [m, v] = channel_stats(h[0]);
                 return bn_ref(h[0], m, v, &h[1], &h[2], eps);
               }, false, 1e-4});
  // The cases that take bfloat16 and float16 (the others must refuse them: OpHalfTest).
  take_halves(c, {
      "groupnorm_2_groups", "groupnorm_instance_like_no_affine", "groupnorm_one_group_large"});
  take_halves_by_prefix(c, {"batchnorm", "frozen_batchnorm", "maxpool"});
  return c;
}

TS_INSTANTIATE_OP_TABLE(NormPool, cases());

// NaN wins its window (as PyTorch) and -inf stays -inf, on the 2x2 fast path and the general one.
TEST(MaxPool, NanPropagatesAndInfinitiesSurvive) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  Tensor x = from_vector<float>({1, nan, 2, 3, -inf, -inf, 5, 4, 0, 0, 0, 0,  //
                                 7, 1, -inf, -inf, -inf, -inf, 1, 1, 0, 0, 0, 8},
                                {1, 1, 2, 12});
  for (Int2 k : {Int2{2, 2}, Int2{2, 3}}) {
    auto [y, idx] = max_pool2d_with_indices(x, k, k);
    const std::vector<float> v = y.to_vector<float>();
    const std::vector<int64_t> at = idx.to_vector<int64_t>();
    EXPECT_TRUE(std::isnan(v[0])) << k.w;
    EXPECT_EQ(at[0], 1) << k.w;
    if (k.w == 2) {
      EXPECT_EQ(std::vector<float>(v.begin() + 1, v.end()), (std::vector<float>{3, -inf, 5, 0, 8}));  // NaN != NaN
      EXPECT_EQ(at, (std::vector<int64_t>{1, 3, 4, 6, 8, 23}));
    }
  }
}

TEST(GroupNorm, RejectsBadGroupsAndParameterShapes) {
  Tensor x = zeros({2, 6, 3, 3});
  EXPECT_THROW(group_norm(x, 4), Error);  // 6 channels, 4 groups
  EXPECT_THROW(group_norm(x, 0), Error);
  EXPECT_THROW(group_norm(x, 3, ones({5})), Error);
  EXPECT_THROW(group_norm(zeros({6}), 3), Error);
  EXPECT_THROW(group_norm(zeros({2, 6}, kInt64), 3), Error);
  EXPECT_THROW(GroupNorm(4, 6), Error);
  EXPECT_EQ(group_norm(zeros({0, 6, 2, 2}), 3).shape(), (Shape{0, 6, 2, 2}));
}

TEST(BatchNorm, RunningStatisticsFollowPyTorchsUpdate) {
  Generator gen(3);
  Tensor x = randn({5, 2, 3, 3}, kFloat64, &gen);
  Tensor rm = from_vector<double>({0.5, -1.0}), rv = from_vector<double>({2.0, 0.25});
  batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.3, 1e-5);
  auto [m, v] = channel_stats(host(x));
  const double M = 5 * 9;
  EXPECT_NEAR(rm.to_vector<double>()[0], 0.7 * 0.5 + 0.3 * m[0], 1e-12);
  EXPECT_NEAR(rm.to_vector<double>()[1], 0.7 * -1.0 + 0.3 * m[1], 1e-12);
  EXPECT_NEAR(rv.to_vector<double>()[0], 0.7 * 2.0 + 0.3 * v[0] * M / (M - 1), 1e-12);  // unbiased
  EXPECT_NEAR(rv.to_vector<double>()[1], 0.7 * 0.25 + 0.3 * v[1] * M / (M - 1), 1e-12);
  // Evaluation leaves them alone.
  batch_norm(x, rm, rv, Tensor(), Tensor(), false);
  EXPECT_NEAR(rm.to_vector<double>()[0], 0.7 * 0.5 + 0.3 * m[0], 1e-12);
}

TEST(BatchNorm, ErrorsNameTheProblem) {
  Tensor x = zeros({2, 3, 4, 4});
  EXPECT_THROW(batch_norm(zeros({3}), Tensor(), Tensor(), Tensor(), Tensor(), true), Error);
  EXPECT_THROW(batch_norm(x, zeros({4}), zeros({4}), Tensor(), Tensor(), false), Error);
  EXPECT_THROW(batch_norm(x, zeros({3}), Tensor(), Tensor(), Tensor(), false), Error);
  EXPECT_THROW(batch_norm(x, Tensor(), Tensor(), zeros({3}, kFloat64), Tensor(), true), Error);
  EXPECT_THROW(batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true), Error);  // one value per channel
  EXPECT_THROW(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 0.0), Error);
  EXPECT_THROW(frozen_batch_norm(x, zeros({3}), zeros({3}), zeros({3}), Tensor()), Error);
}

// Kernel, stride and padding as brace pairs, as a user writes them.
TEST(MaxPool, PairsAsBracesNumbersOrNothing) {
  const Tensor x = randn({1, 2, 9, 11});
  const Tensor braces = max_pool2d(x, {3, 3}, {2, 1}, {1, 1});
  EXPECT_TRUE(test::equal(braces, max_pool2d(x, Int2{3, 3}, std::optional<Int2>(Int2{2, 1}), Int2{1, 1})));
  EXPECT_EQ(braces.shape(), (Shape{1, 2, 5, 11}));
  EXPECT_TRUE(test::equal(max_pool2d(x, 2, 2), max_pool2d(x, 2)));  // no stride: the kernel size
  MaxPool2d layer({3, 3}, {2, 1}, {1, 1});
  EXPECT_TRUE(test::equal(layer.forward(x), braces));
}

TEST(MaxPool, ErrorsNameTheProblem) {
  Tensor x = zeros({1, 1, 4, 4});
  EXPECT_THROW(max_pool2d(zeros({4, 4}), 2), Error);
  EXPECT_THROW(max_pool2d(x, 0), Error);
  EXPECT_THROW(max_pool2d(x, 2, 0), Error);
  EXPECT_THROW(max_pool2d(x, 2, 2, 2), Error);  // padding above half the kernel
  EXPECT_THROW(max_pool2d(x, 5), Error);        // output would be empty
  EXPECT_THROW(max_pool2d(x.to(kInt64), 2), Error);
}

}  // namespace
}  // namespace tessera::test

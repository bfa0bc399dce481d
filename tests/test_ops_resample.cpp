// interpolate and pad in the op table, with plain-loop references of PyTorch's index rules.
#include "op_table.h"

namespace tessera::test {
namespace {

using V = const std::vector<Tensor>&;
using H = const std::vector<Host>&;

// PyTorch's source index for one axis (in double: the cases avoid ties at integer boundaries).
struct RefAxis {
  int64_t in, out;
  double scale;
  bool align;
  void linear(int64_t d, int64_t& i0, int64_t& i1, double& l0, double& l1) const {
    double src = align ? scale * d : scale * (d + 0.5) - 0.5;
    if (!align && src < 0) src = 0;
    i0 = static_cast<int64_t>(src);
    i1 = i0 + (i0 < in - 1 ? 1 : 0);
    l1 = std::min(1.0, std::max(0.0, src - i0));
    l0 = 1 - l1;
  }
  int64_t nearest(int64_t d) const { return std::min(static_cast<int64_t>(std::floor(d * scale)), in - 1); }
};

RefAxis ref_axis(int64_t in, int64_t out, double sf, bool align, bool bilinear) {
  double scale;
  if (bilinear && align) scale = out > 1 ? double(in - 1) / double(out - 1) : 0.0;
  else scale = sf > 0 ? 1.0 / sf : double(in) / double(out);
  return {in, out, scale, align};
}

Host resize_ref(const Host& x, int64_t Ho, int64_t Wo, double sh, double sw, bool bilinear, bool align) {
  const int64_t N = x.shape[0], C = x.shape[1], Hh = x.shape[2], W = x.shape[3];
  const RefAxis ah = ref_axis(Hh, Ho, sh, align, bilinear), aw = ref_axis(W, Wo, sw, align, bilinear);
  Host y = host_zeros({N, C, Ho, Wo});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          if (!bilinear) {
            y.at({n, c, oh, ow}) = x.at({n, c, ah.nearest(oh), aw.nearest(ow)});
            continue;
          }
          int64_t h0, h1, w0, w1;
          double lh0, lh1, lw0, lw1;
          ah.linear(oh, h0, h1, lh0, lh1);
          aw.linear(ow, w0, w1, lw0, lw1);
          y.at({n, c, oh, ow}) = lh0 * (lw0 * x.at({n, c, h0, w0}) + lw1 * x.at({n, c, h0, w1})) +
                                 lh1 * (lw0 * x.at({n, c, h1, w0}) + lw1 * x.at({n, c, h1, w1}));
        }
  return y;
}

OpCase resize_size(const std::string& name, Shape x, Int2 size, const std::string& mode, std::optional<bool> align) {
  return {name, {{x}}, [=](V t) { return interpolate(t[0], size, std::nullopt, mode, align); },
          [=](H h) { return resize_ref(h[0], size.h, size.w, 0, 0, mode == "bilinear", align.value_or(false)); }};
}

OpCase resize_scale(const std::string& name, Shape x, Scale2 s, const std::string& mode, std::optional<bool> align) {
  return {name, {{x}}, [=](V t) { return interpolate(t[0], std::nullopt, s, mode, align); },
          [=](H h) {
            const int64_t Ho = static_cast<int64_t>(std::floor(h[0].shape[2] * s.h));
            const int64_t Wo = static_cast<int64_t>(std::floor(h[0].shape[3] * s.w));
            return resize_ref(h[0], Ho, Wo, s.h, s.w, mode == "bilinear", align.value_or(false));
          }};
}

Host pad_ref(const Host& x, const std::vector<int64_t>& p, bool reflect, double value) {
  const bool two = p.size() == 4;
  Shape out_shape = x.shape;
  out_shape.back() += p[0] + p[1];
  if (two) out_shape[out_shape.size() - 2] += p[2] + p[3];
  Host y = host_zeros(out_shape);
  auto src = [&](int64_t o, int64_t before, int64_t n) -> int64_t {
    int64_t i = o - before;
    if (!reflect) return (i >= 0 && i < n) ? i : -1;
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return i;
  };
  for (int64_t k = 0; k < y.numel(); ++k) {
    Shape idx = unravel(k, out_shape);
    const size_t d = idx.size();
    const int64_t w = src(idx[d - 1], p[0], x.shape[d - 1]);
    const int64_t h = two ? src(idx[d - 2], p[2], x.shape[d - 2]) : idx[d - 2];
    if (w < 0 || h < 0) {
      y.v[k] = value;
      continue;
    }
    Shape xi = idx;
    xi[d - 1] = w;
    if (two) xi[d - 2] = h;
    y.v[k] = x.at(xi);
  }
  return y;
}

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  c.push_back(resize_size("bilinear_up_odd", {1, 2, 3, 5}, {7, 8}, "bilinear", std::nullopt));
  c.push_back(resize_size("bilinear_down", {1, 2, 9, 7}, {4, 3}, "bilinear", false));
  c.push_back(resize_size("bilinear_align_up", {2, 1, 4, 3}, {7, 9}, "bilinear", true));
  c.push_back(resize_size("bilinear_align_down", {1, 2, 8, 7}, {3, 5}, "bilinear", true));
  c.push_back(resize_size("bilinear_to_one_pixel", {1, 1, 4, 5}, {1, 1}, "bilinear", true));
  c.push_back(resize_size("bilinear_from_one_pixel", {1, 2, 1, 1}, {3, 4}, "bilinear", false));
  c.push_back(resize_scale("bilinear_scale_1_5", {1, 2, 4, 6}, 1.5, "bilinear", false));
  c.push_back(resize_scale("bilinear_scale_2", {1, 2, 3, 4}, 2.0, "bilinear", std::nullopt));
  c.push_back(resize_size("nearest_up2", {1, 2, 3, 4}, {6, 8}, "nearest", std::nullopt));
  c.push_back(resize_size("nearest_odd", {1, 2, 5, 3}, {3, 7}, "nearest", std::nullopt));
  c.push_back(resize_scale("nearest_scale_2", {1, 3, 2, 3}, 2.0, "nearest", std::nullopt));
  c.push_back(resize_scale("nearest_scale_0_5", {1, 2, 6, 8}, 0.5, "nearest", std::nullopt));
  c.push_back(resize_size("bilinear_large", {1, 3, 60, 80}, {77, 102}, "bilinear", false));
  c.back().differentiable = false;

  c.push_back({"pad_constant_2d", {{{2, 3, 4}}}, [](V t) { return pad(t[0], {1, 2, 2, 0}, "constant", 0.5); },
               [](H h) { return pad_ref(h[0], {1, 2, 2, 0}, false, 0.5); }});
  c.push_back({"pad_constant_negative_crops", {{{1, 2, 5, 6}}}, [](V t) { return pad(t[0], {-1, 2, 1, -2}); },
               [](H h) { return pad_ref(h[0], {-1, 2, 1, -2}, false, 0.0); }});
  c.push_back({"pad_constant_1d", {{{2, 5}}}, [](V t) { return pad(t[0], {3, 1}); }, [](H h) { return pad_ref(h[0], {3, 1}, false, 0.0); }});
  c.push_back({"pad_reflect_2d", {{{1, 2, 4, 5}}}, [](V t) { return pad(t[0], {2, 3, 3, 1}, "reflect"); },
               [](H h) { return pad_ref(h[0], {2, 3, 3, 1}, true, 0.0); }});
  c.push_back({"pad_reflect_full", {{{1, 1, 3, 3}}}, [](V t) { return pad(t[0], {2, 2, 2, 2}, "reflect"); },
               [](H h) { return pad_ref(h[0], {2, 2, 2, 2}, true, 0.0); }});
  c.push_back({"pad_reflect_1d", {{{2, 3, 6}}}, [](V t) { return pad(t[0], {4, 5}, "reflect"); },
               [](H h) { return pad_ref(h[0], {4, 5}, true, 0.0); }});
  c.push_back({"pad_int_constant", {{{2, 3}, Kind::Int}}, [](V t) { return pad(t[0], {1, 1}, "constant", 7); },
               [](H h) { return pad_ref(h[0], {1, 1}, false, 7.0); }, false});
  // The cases that take bfloat16 and float16 (the others must refuse them: OpHalfTest).
  take_halves(c, {
      "pad_constant_1d", "pad_constant_2d", "pad_constant_negative_crops", "pad_reflect_1d",
      "pad_reflect_2d", "pad_reflect_full"});
  take_halves_by_prefix(c, {"bilinear", "nearest"});
  return c;
}

TS_INSTANTIATE_OP_TABLE(Resample, cases());

// A size and a mode, with no placeholder for the scale factor.
TEST(Resample, InterpolateToASizeWithAMode) {
  const Tensor x = randn({1, 2, 5, 7});
  EXPECT_TRUE(test::equal(interpolate(x, {8, 9}, "bilinear"), interpolate(x, Int2{8, 9}, std::nullopt, "bilinear")));
  EXPECT_TRUE(test::equal(interpolate(x, {8, 9}, "bilinear", true), interpolate(x, Int2{8, 9}, std::nullopt, "bilinear", true)));
  EXPECT_TRUE(test::equal(interpolate(x, {10, 14}), interpolate(x, std::nullopt, 2.0)));  // nearest, x2
  EXPECT_FALSE(test::equal(interpolate(x, {8, 9}, "bilinear"), interpolate(x, {8, 9}, "nearest")));
}

TEST(ResampleErrors, BadArguments) {
  Tensor x = zeros({1, 1, 4, 4});
  EXPECT_THROW(interpolate(zeros({4, 4}), Int2{2, 2}), Error);
  EXPECT_THROW(interpolate(x, std::nullopt, std::nullopt), Error);
  EXPECT_THROW(interpolate(x, Int2{2, 2}, Scale2{2.0}), Error);
  EXPECT_THROW(interpolate(x, Int2{0, 2}), Error);
  EXPECT_THROW(interpolate(x, Int2{2, 2}, std::nullopt, "bicubic"), Error);
  EXPECT_THROW(interpolate(x, Int2{2, 2}, std::nullopt, "nearest", true), Error);
  EXPECT_THROW(interpolate(x, std::nullopt, Scale2{-1.0}), Error);
  EXPECT_THROW(interpolate(x, std::nullopt, Scale2{0.1}), Error);  // empty output
  EXPECT_THROW(pad(x, {1, 1, 1}), Error);
  EXPECT_THROW(pad(x, {4, 0}, "reflect"), Error);   // pad >= size
  EXPECT_THROW(pad(x, {-1, 0}, "reflect"), Error);
  EXPECT_THROW(pad(x, {1, 1}, "replicate"), Error);
  EXPECT_THROW(pad(x, {-3, -3}), Error);  // negative size
}

}  // namespace
}  // namespace tessera::test

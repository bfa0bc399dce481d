// RoIAlign, NMS, box ops and BoxCoder: plain-loop references of torchvision's rules.
#include "op_table.h"

namespace tessera::test {
namespace {

using V = const std::vector<Tensor>&;
using H = const std::vector<Host>&;

// A fixed set of rois over a 2-image batch of 7x9 maps (spatial_scale 0.5 maps them from 14x18):
// inside, partly and wholly outside the map, zero-size, and one that needs adaptive sampling > 1.
const std::vector<double> kRois = {0, 1.0, 2.0, 9.0, 11.0,   1, 0.0, 0.0, 17.5, 13.0,  0, -6.0, -4.0, 3.0, 2.5,
                                   1, 20.0, 16.0, 30.0, 24.0, 0, 5.0, 5.0, 5.0, 5.0,   1, 2.3, 7.7, 6.1, 9.9,
                                   0, 10.0, 1.0, 16.0, 12.5};

// Boxes in the features' dtype; half features take float32 boxes (box coordinates in 8 or 11 bits
// would move the samples: torchvision and detectron2 keep boxes in float32).
DType box_dtype(const Tensor& x) { return is_half(x.dtype()) ? kFloat32 : x.dtype(); }
Tensor rois_like(const Tensor& x) { return from_vector<double>(kRois, {7, 5}).to(box_dtype(x)).to(x.device()); }

Host roi_align_ref(const Host& in, const std::vector<double>& rois, int64_t PH, int64_t PW, double scale, int64_t sampling,
                   bool aligned) {
  const int64_t C = in.shape[1], Hh = in.shape[2], W = in.shape[3], K = static_cast<int64_t>(rois.size() / 5);
  Host out = host_zeros({K, C, PH, PW});
  auto bilinear = [&](int64_t b, int64_t c, double y, double x) {
    if (y < -1.0 || y > Hh || x < -1.0 || x > W) return 0.0;
    y = std::max(y, 0.0);
    x = std::max(x, 0.0);
    int64_t yl = static_cast<int64_t>(y), xl = static_cast<int64_t>(x), yh, xh;
    if (yl >= Hh - 1) { yh = yl = Hh - 1; y = static_cast<double>(yl); } else { yh = yl + 1; }
    if (xl >= W - 1) { xh = xl = W - 1; x = static_cast<double>(xl); } else { xh = xl + 1; }
    const double ly = y - yl, lx = x - xl, hy = 1 - ly, hx = 1 - lx;
    return hy * hx * in.at({b, c, yl, xl}) + hy * lx * in.at({b, c, yl, xh}) + ly * hx * in.at({b, c, yh, xl}) +
           ly * lx * in.at({b, c, yh, xh});
  };
  for (int64_t k = 0; k < K; ++k) {
    const double* r = &rois[5 * k];
    const double off = aligned ? 0.5 : 0.0;
    const double sw = r[1] * scale - off, sh = r[2] * scale - off;
    double rw = r[3] * scale - off - sw, rh = r[4] * scale - off - sh;
    if (!aligned) {
      rw = std::max(rw, 1.0);
      rh = std::max(rh, 1.0);
    }
    const double bh = rh / PH, bw = rw / PW;
    const int64_t gh = sampling > 0 ? sampling : static_cast<int64_t>(std::ceil(rh / PH));
    const int64_t gw = sampling > 0 ? sampling : static_cast<int64_t>(std::ceil(rw / PW));
    const double count = std::max<int64_t>(gh * gw, 1);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ph = 0; ph < PH; ++ph)
        for (int64_t pw = 0; pw < PW; ++pw) {
          double acc = 0;
          for (int64_t iy = 0; iy < gh; ++iy)
            for (int64_t ix = 0; ix < gw; ++ix)
              acc += bilinear(static_cast<int64_t>(r[0]), c, sh + ph * bh + (iy + 0.5) * bh / gh, sw + pw * bw + (ix + 0.5) * bw / gw);
          out.at({k, c, ph, pw}) = acc / count;
        }
  }
  return out;
}

OpCase roi_case(const std::string& name, Int2 out, int64_t sampling, bool aligned) {
  return {name, {{{2, 3, 7, 9}}},
          [=](V t) { return roi_align(t[0], rois_like(t[0]), out, 0.5, sampling, aligned); },
          [=](H h) { return roi_align_ref(h[0], kRois, out.h, out.w, 0.5, sampling, aligned); }};
}

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  c.push_back(roi_case("roi_align_2x2_sampling2", {2, 2}, 2, false));
  c.push_back(roi_case("roi_align_aligned_adaptive", {3, 2}, 0, true));
  c.push_back(roi_case("roi_align_unaligned_adaptive", {2, 3}, -1, false));
  c.push_back(roi_case("roi_align_aligned_sampling1", {4, 4}, 1, true));
  // Two FPN levels (scales 1/2, 1/4): small rois pool from level 0, large ones from level 1.
  c.push_back({"multi_scale_roi_align", {{{2, 3, 12, 12}}, {{2, 3, 6, 6}}},
               [](V t) {
                 Tensor rois = from_vector<double>({0, 1, 1, 9, 9, 1, 0, 0, 23, 20, 0, 4, 2, 40, 44, 1, 3, 3, 5, 6}, {4, 5})
                                   .to(box_dtype(t[0]));
                 return multi_scale_roi_align({t[0], t[1]}, rois, {0.5, 0.25}, {2, 2}, 2, 16.0, 1);
               },
               [](H h) {
                 // sqrt(area) for the rois: 8, ~21.4, ~38.9, ~2.4; with canonical 16 at level 1 and
                 // levels 1..2 (scales 1/2, 1/4): floor(1 + log2(s / 16)) clamped -> 1, 1, 2, 1.
                 const std::vector<double> r = {0, 1, 1, 9, 9, 1, 0, 0, 23, 20, 0, 4, 2, 40, 44, 1, 3, 3, 5, 6};
                 Host out = host_zeros({4, 3, 2, 2});
                 const int levels[4] = {0, 0, 1, 0};
                 for (int k = 0; k < 4; ++k) {
                   std::vector<double> one(r.begin() + 5 * k, r.begin() + 5 * k + 5);
                   Host part = roi_align_ref(h[levels[k]], one, 2, 2, levels[k] == 0 ? 0.5 : 0.25, 2, false);
                   std::copy(part.v.begin(), part.v.end(), out.v.begin() + k * 12);
                 }
                 return out;
               }});
  c.push_back({"box_iou", {{{4, 4}}, {{3, 4}}},
               [](V t) {
                 auto boxes = [](const Tensor& r) { return cat({r.narrow(1, 0, 2), add(r.narrow(1, 0, 2), abs(r.narrow(1, 2, 2)))}, 1); };
                 return box_iou(boxes(t[0]), boxes(t[1]));
               },
               [](H h) {
                 auto box = [](const Host& r, int64_t i, double* b) {
                   b[0] = r.at({i, 0});
                   b[1] = r.at({i, 1});
                   b[2] = b[0] + std::fabs(r.at({i, 2}));
                   b[3] = b[1] + std::fabs(r.at({i, 3}));
                 };
                 Host out = host_zeros({4, 3});
                 for (int64_t i = 0; i < 4; ++i)
                   for (int64_t j = 0; j < 3; ++j) {
                     double a[4], b[4];
                     box(h[0], i, a);
                     box(h[1], j, b);
                     const double w = std::max(0.0, std::min(a[2], b[2]) - std::max(a[0], b[0]));
                     const double hh = std::max(0.0, std::min(a[3], b[3]) - std::max(a[1], b[1]));
                     const double inter = w * hh;
                     out.at({i, j}) = inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
                   }
                 return out;
               }});
  c.push_back({"clip_boxes_to_image", {{{5, 4}}},
               [](V t) { return clip_boxes_to_image(mul(t[0], 4.0), {3, 5}); },
               [](H h) {
                 Host out = h[0];
                 for (int64_t i = 0; i < out.numel(); ++i)
                   out.v[i] = std::min(i % 2 == 0 ? 5.0 : 3.0, std::max(0.0, 4.0 * h[0].v[i]));
                 return out;
               }});
  // The cases that take bfloat16 and float16 (the others must refuse them: OpHalfTest).
  take_halves(c, {
      "box_iou", "clip_boxes_to_image"});
  take_halves_by_prefix(c, {"roi_align", "multi_scale_roi_align"});
  return c;
}

TS_INSTANTIATE_OP_TABLE(Detection, cases());

// ---- NMS

// Random boxes with many overlaps: centres in a small field, sizes 1..8.
std::pair<Tensor, Tensor> random_boxes(int64_t n, uint64_t seed, DType dt = kFloat32) {
  Generator g(seed);
  Tensor c = uniform({n, 2}, 0.0, 20.0, kFloat64, &g), s = uniform({n, 2}, 1.0, 8.0, kFloat64, &g);
  Tensor boxes = cat({sub(c, mul(s, 0.5)), add(c, mul(s, 0.5))}, 1).to(dt);
  return {boxes, rand({n}, dt, &g)};
}

std::vector<int64_t> nms_ref(const Tensor& boxes, const Tensor& scores, double thr) {
  const std::vector<double> b = boxes.to_vector<double>();
  const std::vector<double> s = scores.to_vector<double>();
  const int64_t n = scores.numel();
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return s[a] > s[c]; });
  std::vector<bool> dead(n, false);
  std::vector<int64_t> keep;
  for (int64_t ii = 0; ii < n; ++ii) {
    const int64_t i = order[ii];
    if (dead[i]) continue;
    keep.push_back(i);
    for (int64_t jj = ii + 1; jj < n; ++jj) {
      const int64_t j = order[jj];
      const double w = std::max(0.0, std::min(b[4 * i + 2], b[4 * j + 2]) - std::max(b[4 * i], b[4 * j]));
      const double h = std::max(0.0, std::min(b[4 * i + 3], b[4 * j + 3]) - std::max(b[4 * i + 1], b[4 * j + 1]));
      const double inter = w * h;
      const double uni = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]) +
                         (b[4 * j + 2] - b[4 * j]) * (b[4 * j + 3] - b[4 * j + 1]) - inter;
      if (inter / uni > thr) dead[j] = true;
    }
  }
  return keep;
}

TEST(Nms, MatchesTheGreedyReference) {
  for (double thr : {0.0, 0.3, 0.5, 0.7, 1.0}) {
    auto [boxes, scores] = random_boxes(400, 11, kFloat64);
    EXPECT_EQ(nms(boxes, scores, thr).to_vector<int64_t>(), nms_ref(boxes, scores, thr)) << "threshold " << thr;
  }
}

// The GPU's bitmask algorithm (64 x 64 tiles of suppression bits, then the sweep), run on the CPU
// with the same per-thread functions (CpuPerElementScope), against the same greedy reference; sizes
// on both sides of a tile's edge, and float32 as well as float64.
TEST(Nms, GpuBitmaskAlgorithmMatchesTheGreedyReference) {
  CpuPerElementScope per_element;
  for (int64_t n : {1, 63, 64, 65, 130, 400})
    for (double thr : {0.0, 0.3, 0.7, 1.0})
      for (DType dt : {kFloat64, kFloat32}) {
        auto [boxes, scores] = random_boxes(n, 13 + n, dt);
        EXPECT_EQ(nms(boxes, scores, thr).to_vector<int64_t>(), nms_ref(boxes, scores, thr))
            << n << " boxes, threshold " << thr << ", " << dtype_name(dt);
      }
  Tensor boxes = from_vector<float>({0, 0, 4, 4, 0, 0, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 10, 10, 12, 12}, {5, 4});
  Tensor scores = from_vector<float>({0.9f, 0.9f, 0.8f, 0.8f, 0.95f});
  EXPECT_EQ(nms(boxes, scores, 0.5).to_vector<int64_t>(), (std::vector<int64_t>{4, 0, 2, 3}));
}

TEST(Nms, TiesIdenticalAndZeroAreaBoxes) {
  // Boxes 0 and 1 identical with tied scores: the lower index is kept. Boxes 2 and 3 have zero area:
  // their IoU is 0/0 = NaN, which suppresses nothing (torchvision's behaviour). Box 4 is apart.
  Tensor boxes = from_vector<float>({0, 0, 4, 4, 0, 0, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 10, 10, 12, 12}, {5, 4});
  Tensor scores = from_vector<float>({0.9f, 0.9f, 0.8f, 0.8f, 0.95f});
  EXPECT_EQ(nms(boxes, scores, 0.5).to_vector<int64_t>(), (std::vector<int64_t>{4, 0, 2, 3}));
  EXPECT_EQ(nms(boxes, scores, 1.0).to_vector<int64_t>(), (std::vector<int64_t>{4, 0, 1, 2, 3}));
  EXPECT_EQ(nms(zeros({0, 4}), zeros({0}), 0.5).numel(), 0);
}

TEST(Nms, BatchedKeepsCategoriesApart) {
  // 300 boxes take the coordinate-offset path, 2500 the per-category path (torchvision's split).
  for (int64_t n : {300, 2500}) {
    auto [boxes, scores] = random_boxes(n, 12);
    Tensor idxs = randint(0, 3, {n});
    std::vector<int64_t> got = batched_nms(boxes, scores, idxs, 0.5).to_vector<int64_t>();
    // Reference: NMS per category, merged by decreasing score (ties by index).
    const std::vector<int64_t> cat_v = idxs.to_vector<int64_t>();
    std::vector<int64_t> want;
    for (int64_t k = 0; k < 3; ++k) {
      std::vector<int64_t> members;
      for (int64_t i = 0; i < n; ++i)
        if (cat_v[i] == k) members.push_back(i);
      Tensor mi = from_vector<int64_t>(members);
      for (int64_t j : nms_ref(index_select(boxes, 0, mi), index_select(scores, 0, mi), 0.5)) want.push_back(members[j]);
    }
    const std::vector<float> s = scores.to_vector<float>();
    std::stable_sort(want.begin(), want.end(), [&](int64_t a, int64_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
    EXPECT_EQ(got, want) << n << " boxes";
  }
}

TEST(NmsCuda, MatchesCpu) {
  TS_SKIP_WITHOUT_CUDA();
  for (int64_t n : {1, 63, 64, 65, 3000}) {
    auto [boxes, scores] = random_boxes(n, 13 + n);
    EXPECT_EQ(nms(boxes.cuda(), scores.cuda(), 0.5).cpu().to_vector<int64_t>(), nms(boxes, scores, 0.5).to_vector<int64_t>());
  }
}

TEST(Boxes, AreaRemoveSmallAndErrors) {
  Tensor b = from_vector<float>({0, 0, 2, 3, 1, 1, 1.5f, 4, 0, 0, 10, 0.5f}, {3, 4});
  EXPECT_EQ(box_area(b).to_vector<float>(), (std::vector<float>{6.f, 1.5f, 5.f}));
  EXPECT_EQ(remove_small_boxes(b, 1.0).to_vector<int64_t>(), (std::vector<int64_t>{0}));
  EXPECT_THROW(nms(zeros({3, 5}), zeros({3}), 0.5), Error);
  EXPECT_THROW(nms(zeros({3, 4}), zeros({2}), 0.5), Error);
  EXPECT_THROW(nms(zeros({3, 4}), zeros({3}), 1.5), Error);
  EXPECT_THROW(nms(zeros({3, 4}), zeros({3}), -0.1), Error);
  EXPECT_THROW(batched_nms(zeros({3, 4}), zeros({3}), zeros({3}), 0.5), Error);  // float idxs
  EXPECT_THROW(box_iou(zeros({3, 3}), zeros({2, 4})), Error);
}

TEST(RoiAlignErrors, BadRoisAndArguments) {
  Tensor x = zeros({2, 3, 8, 8});
  EXPECT_THROW(roi_align(x, zeros({3, 4}), {2, 2}), Error);                       // rois of the wrong width
  EXPECT_THROW(roi_align(x, zeros({3, 5}, kFloat64), {2, 2}), Error);             // dtype
  EXPECT_THROW(roi_align(x, full({1, 5}, 2.0), {2, 2}), Error);                   // batch index 2 of 2 images
  EXPECT_THROW(roi_align(x, full({1, 5}, -1.0), {2, 2}), Error);
  EXPECT_THROW(roi_align(x, zeros({1, 5}), {0, 2}), Error);                       // negative/zero size
  EXPECT_THROW(roi_align(x, zeros({1, 5}), {2, 2}, -1.0), Error);
  EXPECT_THROW(roi_align(zeros({3, 8, 8}), zeros({1, 5}), {2, 2}), Error);
  EXPECT_THROW(multi_scale_roi_align({x}, zeros({1, 5}), {0.5, 0.25}, {2, 2}, 2), Error);
  EXPECT_EQ(roi_align(x, zeros({0, 5}), {2, 2}).shape(), (Shape{0, 3, 2, 2}));
}

TEST(RoiAlign, InferredScalesFollowTorchvision) {
  std::vector<Tensor> f = {zeros({1, 1, 200, 272}), zeros({1, 1, 100, 136}), zeros({1, 1, 50, 68}), zeros({1, 1, 25, 34})};
  EXPECT_EQ(infer_roi_scales(f, {800, 1088}), (std::vector<double>{0.25, 0.125, 0.0625, 0.03125}));
}

// ---- BoxCoder

TEST(BoxCoder, EncodeDecodeRoundTripAndTorchvisionFormulas) {
  BoxCoder coder({10.0, 10.0, 5.0, 5.0});
  Tensor proposals = from_vector<double>({0, 0, 10, 20, 5, 5, 15, 9}, {2, 4});
  Tensor gt = from_vector<double>({1, 2, 12, 18, 4, 6, 20, 8}, {2, 4});
  std::vector<double> t = coder.encode(gt, proposals).to_vector<double>();
  // First pair: ex (w 10, h 20, c 5, 10), gt (w 11, h 16, c 6.5, 10).
  EXPECT_NEAR(t[0], 10 * (6.5 - 5) / 10, 1e-12);
  EXPECT_NEAR(t[1], 10 * (10 - 10) / 20.0, 1e-12);
  EXPECT_NEAR(t[2], 5 * std::log(11.0 / 10), 1e-12);
  EXPECT_NEAR(t[3], 5 * std::log(16.0 / 20), 1e-12);
  EXPECT_TRUE(close(coder.decode(coder.encode(gt, proposals), proposals), gt, 1e-9, 1e-9));
  // Decoding clamps dw, dh at log(1000/16): a huge code gives a box 1000/16 times wider, not inf.
  Tensor huge = from_vector<double>({0, 0, 50, 50}, {1, 4});
  std::vector<double> d = coder.decode(huge, from_vector<double>({0, 0, 2, 2}, {1, 4})).to_vector<double>();
  EXPECT_NEAR(d[2] - d[0], 2 * 1000.0 / 16, 1e-9);
  // k classes per row.
  EXPECT_EQ(coder.decode(zeros({2, 12}, kFloat64), proposals).shape(), (Shape{2, 12}));
  EXPECT_THROW(coder.decode(zeros({2, 5}), proposals), Error);
}

}  // namespace
}  // namespace tessera::test

namespace tessera::test {
namespace {

TEST(RoiAlign, SamplesOutsideTheMapIgnoreItsValues) {
  // A roi wholly outside the map reads nothing, so a NaN in the map cannot reach it.
  Tensor x = ones({1, 1, 4, 4});
  x.select(2, 0).select(2, 0).fill_(std::nanf(""));
  Tensor out = roi_align(x, from_vector<float>({0, 20, 20, 30, 30}, {1, 5}), {2, 2}, 1.0, 2);
  EXPECT_EQ(out.to_vector<float>(), std::vector<float>(4, 0.f));
}

}  // namespace
}  // namespace tessera::test

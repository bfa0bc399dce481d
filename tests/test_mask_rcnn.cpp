// Mask R-CNN pieces that need no torchvision: anchors, matcher, sampler, ResNet shapes and frozen
// stages, mask pasting against a direct reference, and the model on small inputs (training on an
// image without objects, bad input). Parity with torchvision is in tests/parity/.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "test_helpers.h"

namespace tessera {
namespace {

TEST(Anchors, CellAnchorsAndOrderAsTorchvision) {
  const AnchorGenerator gen = AnchorGenerator::fpn_default();
  // torchvision's cell anchors for size 32, ratios 0.5, 1, 2 (rounded half to even).
  EXPECT_EQ(gen.cell_anchors(0).to_vector<float>(),
            (std::vector<float>{-23, -11, 23, 11, -16, -16, 16, 16, -11, -23, 11, 23}));
  EXPECT_EQ(gen.cell_anchors(4).to_vector<float>(),
            (std::vector<float>{-362, -181, 362, 181, -256, -256, 256, 256, -181, -362, 181, 362}));
  // Two levels of a 64 x 96 image: 16 x 24 (stride 4) and 8 x 12 (stride 8) maps.
  const AnchorGenerator two({{32}, {64}}, {{0.5, 1.0, 2.0}, {1.0}});
  std::vector<Tensor> feats = {zeros({1, 1, 16, 24}), zeros({1, 1, 8, 12})};
  const Tensor a = two.anchors(feats, Int2{64, 96});
  ASSERT_EQ(a.shape(), (Shape{16 * 24 * 3 + 8 * 12, 4}));
  EXPECT_EQ(two.anchors_per_level(feats), (std::vector<int64_t>{16 * 24 * 3, 8 * 12}));
  const std::vector<float> v = a.to_vector<float>();
  // Location-major, then aspect ratio: row 0, column 1 (x shift 4), ratio 1 is anchor 4.
  EXPECT_EQ(std::vector<float>(v.begin() + 16, v.begin() + 20), (std::vector<float>{4 - 16, -16, 4 + 16, 16}));
  // Row 1, column 0 of level 0 (y shift 4), ratio 0.5: anchor 24 * 3.
  EXPECT_EQ(std::vector<float>(v.begin() + 72 * 4, v.begin() + 72 * 4 + 4), (std::vector<float>{-23, 4 - 11, 23, 4 + 11}));
  // The first anchor of level 1 (size 64, ratio 1) at the origin.
  EXPECT_EQ(std::vector<float>(v.begin() + 16 * 24 * 3 * 4, v.begin() + 16 * 24 * 3 * 4 + 4),
            (std::vector<float>{-32, -32, 32, 32}));
  EXPECT_THROW(AnchorGenerator({{32}}, {{1.0}, {2.0}}), Error);
  EXPECT_THROW(two.anchors({zeros({1, 1, 4, 4})}, Int2{16, 16}), Error);
}

TEST(Matcher, ThresholdsAndLowQualityMatches) {
  // 2 ground truths x 5 predictions.
  const Tensor q = from_vector<float>({0.9f, 0.5f, 0.2f, 0.1f, 0.0f,  //
                                       0.1f, 0.6f, 0.25f, 0.25f, 0.0f},
                                      {2, 5});
  // 0.7 / 0.3 without low-quality matches: 0 -> gt 0; 1 -> between (0.6); 2, 3 -> below; 4 below.
  EXPECT_EQ(Matcher(0.7, 0.3)(q).to_vector<int64_t>(), (std::vector<int64_t>{0, -2, -1, -1, -1}));
  // With them: gt 1's best predictions (prediction 1, IoU 0.6) keep their match.
  EXPECT_EQ(Matcher(0.7, 0.3, true)(q).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, -1, -1, -1}));
  // Ties for a ground truth's best: all of them are kept (gt 1 at 0.25 when it is its best).
  const Tensor q2 = from_vector<float>({0.9f, 0.0f, 0.0f, 0.1f, 0.25f, 0.25f}, {2, 3});
  EXPECT_EQ(Matcher(0.7, 0.3, true)(q2).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_THROW(Matcher(0.3, 0.7), Error);
  EXPECT_THROW(Matcher(0.7, 0.3)(zeros({0, 4})), Error);
}

TEST(Sampler, CountsFractionAndDeterminism) {
  // 30 positives, 200 negatives, 20 ignored.
  std::vector<int64_t> l(250, 0);
  for (int i = 0; i < 30; ++i) l[static_cast<size_t>(i * 8)] = 1 + i % 3;
  for (int i = 0; i < 20; ++i) l[static_cast<size_t>(i * 12 + 5)] = -1;
  const Tensor labels = from_vector(l, {250});
  const BalancedPositiveNegativeSampler s(64, 0.25);
  Generator g1(3), g2(3), g3(4);
  auto [pos, neg] = s(labels, &g1);
  auto [pos2, neg2] = s(labels, &g2);
  auto [pos3, neg3] = s(labels, &g3);
  EXPECT_EQ(sum(pos.to(kInt64)).item<int64_t>(), 16);
  EXPECT_EQ(sum(neg.to(kInt64)).item<int64_t>(), 48);
  EXPECT_TRUE(test::equal(pos, pos2));
  EXPECT_TRUE(test::equal(neg, neg2));
  EXPECT_FALSE(test::equal(neg, neg3));
  const auto p = pos.to_vector<uint8_t>(), n = neg.to_vector<uint8_t>();
  for (size_t i = 0; i < l.size(); ++i) {
    if (p[i]) {
      EXPECT_GE(l[i], 1);
    }
    if (n[i]) {
      EXPECT_EQ(l[i], 0);
    }
  }
  // Fewer positives than the quota: the rest are negatives.
  auto [pos4, neg4] = BalancedPositiveNegativeSampler(256, 0.5)(labels, &g1);
  EXPECT_EQ(sum(pos4.to(kInt64)).item<int64_t>(), 30);
  EXPECT_EQ(sum(neg4.to(kInt64)).item<int64_t>(), 200);
}

// resnet18() ... resnet152() build torchvision's classifiers: the same state_dict names, shapes
// and order as torchvision.models.resnet<N>() (tests/data/torch/resnets.json, made by
// scripts/make_resnet_fixture.py), BatchNorm2d, 1000 logits.
TEST(ResNet, FactoriesMatchTorchvisionClassifiers) {
  const auto fixture = nlohmann::json::parse(std::ifstream(test::data_path("torch/resnets.json")));
  const std::vector<std::pair<int, std::shared_ptr<ResNet> (*)(int64_t, Generator*)>> factories = {
      {18, resnet18}, {34, resnet34}, {50, resnet50}, {101, resnet101}, {152, resnet152}};
  for (const auto& [depth, make] : factories) {
    const std::shared_ptr<ResNet> net = make(1000, nullptr);
    const NamedTensors state = net->state_dict();
    const auto& want = fixture.at("resnet" + std::to_string(depth));
    ASSERT_EQ(state.size(), want.size()) << "resnet" << depth;
    for (size_t i = 0; i < state.size(); ++i) {
      EXPECT_EQ(state[i].first, want[i][0].get<std::string>()) << "resnet" << depth << " entry " << i;
      EXPECT_EQ(state[i].second.shape(), want[i][1].get<Shape>()) << state[i].first;
    }
    EXPECT_TRUE(net->is_training());
  }
  const std::shared_ptr<ResNet> small = resnet18(10);
  small->eval();
  NoGradGuard g;
  EXPECT_EQ(small->forward(randn({2, 3, 64, 64})).shape(), (Shape{2, 10}));
  EXPECT_THROW(resnet50(0), Error);
}

TEST(ResNet, StageShapesChannelsAndFrozenStages) {
  for (int64_t depth : {18, 34, 50}) {
    ResNetOptions o;
    o.depth = depth;
    o.trainable_layers = 3;
    ResNet net(o);
    const auto c = net.stage_channels();
    NoGradGuard g;
    const auto f = net.features(rand({1, 3, 64, 96}));
    ASSERT_EQ(f.size(), 4u);
    for (int s = 0; s < 4; ++s) EXPECT_EQ(f[static_cast<size_t>(s)].shape(), (Shape{1, c[s], 64 >> (s + 2), 96 >> (s + 2)})) << depth;
    for (auto& [name, p] : net.named_parameters()) {
      const bool frozen = name.rfind("conv1", 0) == 0 || name.rfind("layer1", 0) == 0;
      EXPECT_EQ(p.requires_grad(), !frozen) << name;
    }
  }
  // torchvision's key names and the ResNet-101 stage depth.
  ResNetOptions o;
  o.depth = 101;
  const auto sd = ResNet(o).state_dict_map();
  EXPECT_TRUE(sd.count("layer3.22.conv3.weight"));
  EXPECT_FALSE(sd.count("layer3.23.conv3.weight"));
  EXPECT_TRUE(sd.count("layer1.0.downsample.0.weight"));
  EXPECT_TRUE(sd.count("layer1.0.downsample.1.running_var"));
  o.depth = 42;
  EXPECT_THROW(ResNet{o}, Error);
}

TEST(ResNet, GroupNormOptionNormalisesEachImageOnItsOwn) {
  ResNetOptions o{18, false, 5, 0, 32};
  manual_seed(4);
  ResNet net(o);
  net.train();
  const auto sd = net.state_dict_map();
  EXPECT_TRUE(sd.count("bn1.weight") && sd.count("layer2.0.downsample.1.bias"));  // torchvision's names
  EXPECT_FALSE(sd.count("bn1.running_mean"));                                      // no statistics
  // With GroupNorm an image's features do not depend on the other images of the batch, in training
  // too (with BatchNorm they do: the second check).
  Generator g(8);
  Tensor a = randn({1, 3, 64, 64}, kFloat32, &g), b = mul(randn({1, 3, 64, 64}, kFloat32, &g), 3.0);
  const Tensor alone = net.features(a)[3], together = net.features(cat({a, b}, 0))[3].narrow(0, 0, 1);
  EXPECT_TRUE(test::close(together, alone, 1e-4, 1e-5));
  ResNet bn({18, false, 5, 0, 0});
  bn.train();
  EXPECT_FALSE(test::close(bn.features(cat({a, b}, 0))[3].narrow(0, 0, 1), bn.features(a)[3], 1e-2, 1e-2));
  EXPECT_THROW(ResNet({18, false, 5, 0, 48}), Error);  // 48 does not divide 64
}

// FrozenBatchNorm runs in the convolution's epilogue (conv2d_scale_shift, models/resnet.cpp): the
// features and the trainable convolutions' gradients equal those of the same weights with
// BatchNorm2d in eval mode, which runs conv, norm and ReLU one after the other. Non-trivial
// statistics, in float64.
TEST(ResNet, FrozenBatchNormInTheConvEpilogueEqualsConvThenNorm) {
  for (int64_t depth : {18, 50}) {
    SCOPED_TRACE(depth);
    manual_seed(6);
    ResNet folded({depth, true, 3, 0, 0});
    ResNet plain({depth, false, 3, 0, 0});
    folded.to(kFloat64);
    plain.to(kFloat64);
    Generator g(12);
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : folded.state_dict_map()) {
      Tensor v = t;
      if (name.find("running_var") != std::string::npos) v = add(rand(t.shape(), kFloat64, &g), 0.5);
      else if (name.find("bn") != std::string::npos || name.find("downsample.1") != std::string::npos)
        v = add(mul(randn(t.shape(), kFloat64, &g), 0.2), name.find("weight") != std::string::npos ? 1.0 : 0.0);
      state[name] = v;
    }
    folded.load_state_dict(state);
    plain.load_state_dict(state, false);  // BatchNorm2d has num_batches_tracked too
    plain.eval();
    const Tensor x = randn({2, 3, 64, 64}, kFloat64, &g);
    const auto a = folded.features(x), b = plain.features(x);
    for (size_t s = 0; s < 4; ++s) EXPECT_TRUE(test::close(a[s], b[s], 1e-10, 1e-9)) << "stage " << s;
    sum(a[3]).backward();
    sum(b[3]).backward();
    std::map<std::string, Tensor> pb;
    for (auto& [name, p] : plain.named_parameters()) pb[name] = p;
    int compared = 0;
    for (auto& [name, p] : folded.named_parameters())
      if (p.requires_grad() && name.find("conv") != std::string::npos) {
        EXPECT_TRUE(test::close(p.grad(), pb.at(name).grad(), 1e-9, 1e-8)) << name;
        ++compared;
      }
    EXPECT_GT(compared, 5);
  }
}

TEST(PasteMasks, MatchesADirectReference) {
  // Reference: the padded mask resized to the enlarged integer box with a plain bilinear loop
  // (align_corners = false), then copied into the image where the box lies inside it.
  Generator g(9);
  const Tensor masks = rand({3, 1, 28, 28}, kFloat32, &g);
  const Tensor boxes = from_vector<float>({10.3f, 5.7f, 40.2f, 30.9f, -6.f, 20.f, 15.5f, 70.f, 50.f, 50.f, 50.4f, 51.f}, {3, 4});
  const Tensor got = paste_masks_in_image(masks, boxes, Int2{60, 64});
  ASSERT_EQ(got.shape(), (Shape{3, 1, 60, 64}));
  const auto m = masks.to_vector<float>(), b = boxes.to_vector<float>(), o = got.to_vector<float>();
  for (int d = 0; d < 3; ++d) {
    const float* bx = &b[static_cast<size_t>(d * 4)];
    const double scale = 30.0 / 28.0;
    const double xc = (bx[0] + bx[2]) * 0.5, yc = (bx[1] + bx[3]) * 0.5;
    const double wh = (bx[2] - bx[0]) * 0.5 * scale, hh = (bx[3] - bx[1]) * 0.5 * scale;
    const int64_t x0 = static_cast<int64_t>(xc - wh), x1 = static_cast<int64_t>(xc + wh);
    const int64_t y0 = static_cast<int64_t>(yc - hh), y1 = static_cast<int64_t>(yc + hh);
    const int64_t w = std::max<int64_t>(x1 - x0 + 1, 1), h = std::max<int64_t>(y1 - y0 + 1, 1);
    auto padded = [&](int64_t y, int64_t x) {
      return (y < 1 || y > 28 || x < 1 || x > 28) ? 0.0 : m[static_cast<size_t>(d * 784 + (y - 1) * 28 + (x - 1))];
    };
    auto src = [](int64_t i, int64_t out, int64_t in) {
      return std::max(0.0, (static_cast<double>(i) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5);
    };
    for (int64_t y = 0; y < 60; ++y)
      for (int64_t x = 0; x < 64; ++x) {
        double want = 0;
        if (x >= x0 && x <= x1 && y >= y0 && y <= y1) {
          const double sy = src(y - y0, h, 30), sx = src(x - x0, w, 30);
          const int64_t iy = std::min<int64_t>(static_cast<int64_t>(sy), 29), ix = std::min<int64_t>(static_cast<int64_t>(sx), 29);
          const int64_t iy1 = std::min<int64_t>(iy + 1, 29), ix1 = std::min<int64_t>(ix + 1, 29);
          const double ly = sy - iy, lx = sx - ix;
          want = (1 - ly) * ((1 - lx) * padded(iy, ix) + lx * padded(iy, ix1)) + ly * ((1 - lx) * padded(iy1, ix) + lx * padded(iy1, ix1));
        }
        ASSERT_NEAR(o[static_cast<size_t>((d * 60 + y) * 64 + x)], want, 1e-5) << d << " " << y << " " << x;
      }
  }
  EXPECT_EQ(paste_masks_in_image(zeros({0, 1, 28, 28}), zeros({0, 4}), Int2{5, 6}).shape(), (Shape{0, 1, 5, 6}));
  EXPECT_THROW(paste_masks_in_image(zeros({2, 1, 28, 28}), zeros({3, 4}), Int2{5, 6}), Error);
}

MaskRCNNOptions small_options() {
  MaskRCNNOptions o;
  o.num_classes = 4;
  o.backbone.depth = 18;
  o.min_size = 64;
  o.max_size = 96;
  o.rpn.pre_nms_top_n_train = 200;
  o.rpn.post_nms_top_n_train = 100;
  o.rpn.pre_nms_top_n_test = 100;
  o.rpn.post_nms_top_n_test = 50;
  o.roi_heads.batch_size_per_image = 64;
  o.roi_heads.representation_size = 64;
  return o;
}

// The RoI heads are reachable from the model: the module registered as "roi_heads".
TEST(MaskRCNN, RoIHeadsAccessorIsTheRegisteredModule) {
  MaskRCNN net(small_options());
  std::vector<std::string> want;
  for (const auto& [name, t] : net.named_parameters())
    if (name.rfind("roi_heads.", 0) == 0) want.push_back(name.substr(10));
  std::vector<std::string> got;
  for (const auto& [name, t] : net.roi_heads().named_parameters()) got.push_back(name);
  EXPECT_FALSE(want.empty());
  EXPECT_EQ(got, want);
}

// torchvision's MultiScaleRoIAlign in one call: each box is pooled from the level torchvision's
// LevelMapper picks (floor(4 + log2(sqrt(area) / 224 + 1e-6)), clamped to 2..5) at 1 / 2^level.
TEST(MaskRCNN, OneCallMultiScaleRoIAlignPoolsEachBoxFromItsLevel) {
  manual_seed(4);
  std::vector<Tensor> features;
  for (int64_t level = 2; level <= 5; ++level) features.push_back(randn({2, 3, 512 >> level, 640 >> level}));
  const std::vector<Tensor> boxes = {from_vector<float>({10, 20, 50, 60, 30, 40, 180, 190}, {2, 4}),
                                     from_vector<float>({0, 0, 300, 310, 100, 50, 600, 500, 5, 5, 9, 9}, {3, 4})};
  const std::vector<Int2> sizes = {Int2{512, 640}, Int2{500, 600}};
  const Tensor pooled = multi_scale_roi_align(features, boxes, sizes, Int2{7, 7});
  ASSERT_EQ(pooled.shape(), (Shape{5, 3, 7, 7}));
  int64_t row = 0;
  std::set<int64_t> levels_used;
  for (int64_t img = 0; img < 2; ++img)
    for (int64_t k = 0; k < boxes[static_cast<size_t>(img)].size(0); ++k, ++row) {
      const std::vector<float> b = boxes[static_cast<size_t>(img)].select(0, k).to_vector<float>();
      const double side = std::sqrt(double(b[2] - b[0]) * double(b[3] - b[1]));
      const int64_t level = std::clamp<int64_t>(static_cast<int64_t>(std::floor(4 + std::log2(side / 224 + 1e-6))), 2, 5);
      levels_used.insert(level);
      const Tensor roi = from_vector<float>({static_cast<float>(img), b[0], b[1], b[2], b[3]}, {1, 5});
      const Tensor want = roi_align(features[static_cast<size_t>(level - 2)], roi, Int2{7, 7}, 1.0 / double(int64_t{1} << level), 2);
      EXPECT_TRUE(test::close(pooled.narrow(0, row, 1), want, 1e-6, 1e-6)) << "image " << img << " box " << k << " level " << level;
    }
  EXPECT_EQ(levels_used.size(), 4u) << "the boxes should reach every level";
  EXPECT_THROW(multi_scale_roi_align(features, {boxes[0]}, sizes, Int2{7, 7}), Error);
}

TEST(MaskRCNN, AnchorSizesOptionSetsTheRPNAnchorsPerLevel) {
  MaskRCNNOptions o = small_options();
  EXPECT_TRUE(test::equal(MaskRCNN(o).rpn().anchor_generator().cell_anchors(4),
                          AnchorGenerator::fpn_default().cell_anchors(4)));  // torchvision's by default
  o.anchor_sizes = {8, 16, 32, 64, 128};
  MaskRCNN net(o);
  for (size_t level = 0; level < 5; ++level) {
    const AnchorGenerator one({{o.anchor_sizes[level]}}, {{0.5, 1.0, 2.0}});
    EXPECT_TRUE(test::equal(net.rpn().anchor_generator().cell_anchors(level), one.cell_anchors(0))) << level;
  }
  // The square anchor of P2 is 8 px wide.
  const std::vector<float> a = net.rpn().anchor_generator().cell_anchors(0).to_vector<float>();
  EXPECT_EQ(a[6] - a[4], 8.f);
  o.anchor_sizes = {16, 32, 64};
  EXPECT_THROW(MaskRCNN{o}, Error);
  o.anchor_sizes = {16, 32, -64, 128, 256};
  EXPECT_THROW(MaskRCNN{o}, Error);
}

TEST(MaskRCNN, TrainsOnImagesWithAndWithoutObjectsAndRejectsBadInput) {
  manual_seed(2);
  MaskRCNN net(small_options());
  SyntheticShapes shapes(2, 5, 64, 80);
  std::vector<Sample> batch = {shapes.get(0), shapes.get(1)};
  ASSERT_GT(batch[0].boxes.size(0), 0);
  // The second image has no objects (as torchvision allows): every proposal is background.
  batch[1].boxes = zeros({0, 4});
  batch[1].labels = zeros({0}, kInt64);
  batch[1].masks = zeros({0, 64, 80}, kUInt8);
  net.train();
  Generator g(1);
  MaskRCNNLosses l = net.losses(batch, &g);
  for (const Tensor& t : {l.loss_classifier, l.loss_box_reg, l.loss_mask, l.loss_objectness, l.loss_rpn_box_reg})
    EXPECT_TRUE(std::isfinite(t.item<float>()));
  l.total().backward();
  int with_grad = 0;
  for (auto& p : net.parameters())
    if (p.grad().defined()) ++with_grad;
  EXPECT_GT(with_grad, 20);
  // Both images without objects: finite losses, zero box and mask losses.
  batch[0] = batch[1];
  l = net.losses(batch, &g);
  EXPECT_TRUE(std::isfinite(l.loss_classifier.item<float>()));
  EXPECT_EQ(l.loss_box_reg.item<float>(), 0.0f);
  EXPECT_EQ(l.loss_mask.item<float>(), 0.0f);
  EXPECT_EQ(l.loss_rpn_box_reg.item<float>(), 0.0f);
  l.total().backward();

  // Bad input: an empty image, a label out of range, a box with no width.
  Sample bad = shapes.get(0);
  bad.image = zeros({3, 0, 10});
  EXPECT_THROW(net.losses({bad}), Error);
  bad = shapes.get(0);
  bad.labels = full_like(bad.labels, 7.0);
  EXPECT_THROW(net.losses({bad}), Error);
  bad = shapes.get(0);
  bad.boxes = from_vector<float>({5, 5, 5, 9}, {1, 4});
  bad.labels = from_vector<int64_t>({1});
  bad.masks = zeros({1, 64, 80}, kUInt8);
  EXPECT_THROW(net.losses({bad}), Error);
  EXPECT_THROW(net.detect({shapes.get(0).image}), Error);  // still in training mode

  // Inference: detections inside each image, masks pasted at the image's size.
  net.eval();
  const auto dets = net.detect({shapes.get(0).image, rand({3, 50, 70})});
  ASSERT_EQ(dets.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const Detections& d = dets[static_cast<size_t>(i)];
    const int64_t H = i == 0 ? 64 : 50, W = i == 0 ? 80 : 70;
    EXPECT_EQ(d.masks.shape(), (Shape{d.boxes.size(0), 1, H, W}));
    if (d.boxes.size(0) == 0) continue;
    EXPECT_GE(amin(d.boxes).item<float>(), 0.0f);
    EXPECT_LE(amax(d.boxes.select(1, 2)).item<float>(), static_cast<float>(W));
    EXPECT_LE(amax(d.boxes.select(1, 3)).item<float>(), static_cast<float>(H));
  }
  EXPECT_THROW(net.detect({zeros({1, 10, 10})}), Error);
}

}  // namespace
}  // namespace tessera

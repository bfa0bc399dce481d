// Whole models on CUDA against the same models on the CPU: U-Net (forward, weighted loss, every
// parameter gradient, one SGD step, overlap-tile inference) and Mask R-CNN (training losses and
// gradients with every anchor and proposal sampled, so that nothing is random; detections).
// Mask R-CNN on CUDA is also checked against torchvision in tests/parity/. Each test skips without
// a usable device (and fails instead under TESSERA_REQUIRE_CUDA=1).
#include "data/synthetic.h"
#include "data/weight_map.h"
#include "models/unet.h"
#include "test_helpers.h"

namespace tessera {
namespace {

using test::rel_l2;
using test::worst_ratio;

// A second copy of `net`'s parameters and buffers, on `dev`.
template <class Net, class Options>
std::unique_ptr<Net> copy_to(const Net& net, const Options& o, const Device& dev) {
  auto twin = std::make_unique<Net>(o);
  twin->load_state_dict(net.state_dict_map());
  twin->to(dev);
  return twin;
}

TEST(UNetCuda, TrainingStepAndTiledInferenceMatchTheCpu) {
  TS_SKIP_WITHOUT_CUDA();
  manual_seed(11);
  UNetOptions o;
  o.width = 8;
  o.depth = 3;
  o.dropout = 0.0;  // dropout's masks come from each device's generator
  UNet cpu_net(o);
  auto gpu_net = copy_to(cpu_net, o, cuda_device());
  SyntheticCells cells(2, 3, 96, 96);
  Sample s = cells.get(0);
  s.weight = unet_weight_map(s.mask, s.instances);
  const int64_t in = 124, out = cpu_net.output_size(in), m = (in - out) / 2;
  Tensor x = mirror_pad(s.image, m, m, m, m).narrow(1, 0, in).narrow(2, 0, in).unsqueeze(0).contiguous();
  Tensor t = s.mask.narrow(0, 0, out).narrow(1, 0, out).unsqueeze(0).contiguous();
  Tensor w = s.weight.narrow(0, 0, out).narrow(1, 0, out).unsqueeze(0).contiguous();

  SGD cpu_opt(cpu_net.parameters(), SGDOptions{0.05, 0.9});
  SGD gpu_opt(gpu_net->parameters(), SGDOptions{0.05, 0.9});
  Tensor logits_cpu = cpu_net.forward(x), logits_gpu = gpu_net->forward(x.cuda());
  ASSERT_TRUE(logits_gpu.is_cuda());
  const double scale = amax(abs(logits_cpu)).item<double>();
  EXPECT_LE(worst_ratio(logits_gpu, logits_cpu, 1e-5 * scale, 1e-4), 1.0) << "logits";
  Tensor loss_cpu = pixel_weighted_cross_entropy(logits_cpu, t, w);
  Tensor loss_gpu = pixel_weighted_cross_entropy(logits_gpu, t.cuda(), w.cuda());
  EXPECT_NEAR(loss_gpu.item<double>(), loss_cpu.item<double>(), 1e-5 * std::abs(loss_cpu.item<double>()));
  loss_cpu.backward();
  loss_gpu.backward();
  const auto cpu_params = cpu_net.named_parameters(), gpu_params = gpu_net->named_parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size());
  for (size_t k = 0; k < cpu_params.size(); ++k) {
    const Tensor& a = gpu_params[k].second;
    const Tensor& b = cpu_params[k].second;
    ASSERT_TRUE(a.grad().defined() && b.grad().defined()) << cpu_params[k].first;
    EXPECT_LE(rel_l2(a.grad(), b.grad()), 1e-4) << cpu_params[k].first << " gradient";
  }
  cpu_opt.step();
  gpu_opt.step();
  for (size_t k = 0; k < cpu_params.size(); ++k)
    EXPECT_LE(rel_l2(gpu_params[k].second, cpu_params[k].second), 1e-5) << cpu_params[k].first << " after the step";

  // Overlap-tile inference of a whole image on both devices.
  cpu_net.eval();
  gpu_net->eval();
  Tensor image = s.image.unsqueeze(0);
  Tensor tiled_cpu = predict_tiled(cpu_net, image, 36), tiled_gpu = predict_tiled(*gpu_net, image.cuda(), 36);
  EXPECT_LE(worst_ratio(tiled_gpu, tiled_cpu, 1e-5 * amax(abs(tiled_cpu)).item<double>(), 1e-4), 1.0) << "tiled";
}

MaskRCNNOptions small_maskrcnn() {
  MaskRCNNOptions o;
  o.backbone.depth = 18;
  o.min_size = 96;
  o.max_size = 128;
  o.anchor_sizes = {8, 16, 32, 64, 128};
  // Every anchor kept before NMS and every anchor and proposal sampled: nothing depends on a
  // generator or on a top-k boundary between near-equal scores.
  o.rpn.pre_nms_top_n_train = 100000;
  o.rpn.post_nms_top_n_train = 300;
  o.rpn.batch_size_per_image = 10000000;
  o.roi_heads.batch_size_per_image = 10000000;
  o.roi_heads.representation_size = 64;
  return o;
}

TEST(MaskRCNNCuda, TrainingLossesAndGradientsMatchTheCpu) {
  TS_SKIP_WITHOUT_CUDA();
  manual_seed(5);
  const MaskRCNNOptions o = small_maskrcnn();
  MaskRCNN cpu_net(o);
  auto gpu_net = copy_to(cpu_net, o, cuda_device());
  cpu_net.train();
  gpu_net->train();
  SyntheticShapes shapes(2, 7, 96, 112);
  const std::vector<Sample> batch = {shapes.get(0), shapes.get(1)};
  ASSERT_GT(batch[0].boxes.size(0), 0);
  const MaskRCNNLosses a = cpu_net.losses(batch), b = gpu_net->losses(batch);
  const std::pair<const char*, std::pair<Tensor, Tensor>> losses[] = {
      {"loss_classifier", {a.loss_classifier, b.loss_classifier}}, {"loss_box_reg", {a.loss_box_reg, b.loss_box_reg}},
      {"loss_mask", {a.loss_mask, b.loss_mask}}, {"loss_objectness", {a.loss_objectness, b.loss_objectness}},
      {"loss_rpn_box_reg", {a.loss_rpn_box_reg, b.loss_rpn_box_reg}}};
  for (const auto& [name, pair] : losses) {
    const double want = pair.first.item<double>(), got = pair.second.item<double>();
    EXPECT_TRUE(std::isfinite(got)) << name;
    EXPECT_NEAR(got, want, 1e-3 * std::abs(want) + 1e-6) << name;
  }
  a.total().backward();
  b.total().backward();
  const auto pa = cpu_net.named_parameters(), pb = gpu_net->named_parameters();
  int checked = 0;
  for (size_t k = 0; k < pa.size(); ++k) {
    if (!pa[k].second.grad().defined()) continue;
    ASSERT_TRUE(pb[k].second.grad().defined()) << pa[k].first;
    EXPECT_LE(rel_l2(pb[k].second.grad(), pa[k].second.grad()), 5e-3) << pa[k].first;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(MaskRCNNCuda, DetectionsMatchTheCpu) {
  TS_SKIP_WITHOUT_CUDA();
  manual_seed(6);
  MaskRCNNOptions o = small_maskrcnn();
  o.roi_heads.score_thresh = 0.0;  // random weights: keep every detection up to the limit
  o.roi_heads.detections_per_img = 20;
  MaskRCNN cpu_net(o);
  auto gpu_net = copy_to(cpu_net, o, cuda_device());
  cpu_net.eval();
  gpu_net->eval();
  SyntheticShapes shapes(1, 8, 96, 112);
  const Tensor image = shapes.get(0).image;
  const Detections a = cpu_net.detect({image})[0], b = gpu_net->detect({image})[0];
  ASSERT_EQ(b.boxes.size(0), a.boxes.size(0));
  ASSERT_GT(a.boxes.size(0), 0);
  // The same detections, up to float32 rounding between the devices' kernels: near-equal scores
  // may come out in another order, so each CPU row is matched to a CUDA row with its label and box.
  const auto la = a.labels.to_vector<int64_t>(), lb = b.labels.cpu().to_vector<int64_t>();
  const int64_t n = a.boxes.size(0);
  std::vector<bool> used(static_cast<size_t>(n), false);
  for (int64_t i = 0; i < n; ++i) {
    int64_t found = -1;
    for (int64_t j = 0; j < n && found < 0; ++j)
      if (!used[static_cast<size_t>(j)] && lb[static_cast<size_t>(j)] == la[static_cast<size_t>(i)] &&
          worst_ratio(b.boxes.select(0, j), a.boxes.select(0, i), 1e-3, 1e-3) <= 1.0)
        found = j;
    ASSERT_GE(found, 0) << "no CUDA detection for CPU detection " << i;
    used[static_cast<size_t>(found)] = true;
    EXPECT_LE(worst_ratio(b.scores.select(0, found), a.scores.select(0, i), 1e-6, 1e-4), 1.0) << "score " << i;
    EXPECT_LE(worst_ratio(b.masks.select(0, found), a.masks.select(0, i), 1e-4, 1e-3), 1.0) << "mask " << i;
  }
}

}  // namespace
}  // namespace tessera

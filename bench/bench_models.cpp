// Whole models: Mask R-CNN inference and training step (ResNet-50-FPN, torchvision's defaults,
// 512 x 512), and a U-Net training step (forward, pixel-weighted cross-entropy, backward, SGD with
// momentum) and overlap-tile-free inference on one tile. scripts/compare_torch.py builds the same
// network in PyTorch (same layers, same tile) and times the same step.
//
// Sizes (the U-Net issue's): the paper's network (width 64, 572x572 -> 388x388, batch 1) and a
// width-16 network on a batch of four 572x572 tiles, on every device.
#include <memory>
#include <optional>

#include "bench_common.h"

namespace tessera::bench {

namespace {

struct UNetCase {
  UNet net;
  Tensor x, target, weight;
  UNetCase(int64_t width, int64_t tile, int64_t batch, Device dev) : net(make(width)) {
    net.to(dev);
    const int64_t out = net.output_size(tile);
    Generator g(5);
    x = randn({batch, 1, tile, tile}, kFloat32, &g).to(dev);
    target = randint(0, 2, {batch, out, out}, kInt64, &g).to(dev);
    weight = uniform({batch, out, out}, 0.5, 3.0, kFloat32, &g).to(dev);
  }
  static UNet make(int64_t width) {
    UNetOptions o;
    o.width = width;
    o.dropout = 0.0;  // the same work in both frameworks (dropout's mask costs little either way)
    manual_seed(0);
    return UNet(o);
  }
};

// The "Bf16" twins run the same step under AutocastGuard(kBFloat16) (scripts/compare_torch.py
// runs PyTorch's under torch.autocast(device, torch.bfloat16)).
void unet_train_step(benchmark::State& state, bool bf16) {
  const Device dev = device_of(state);
  UNetCase c(state.range(1), state.range(2), state.range(3), dev);
  c.net.train();
  SGD opt(c.net.parameters(), SGDOptions{1e-4, 0.99});
  auto step = [&] {
    opt.zero_grad();
    std::optional<AutocastGuard> amp;
    if (bf16) amp.emplace(kBFloat16, dev.type);
    Tensor loss = pixel_weighted_cross_entropy(c.net.forward(c.x), c.target, c.weight);
    amp.reset();
    loss.backward();
    opt.step();
    sync(dev);
    return loss;
  };
  step();  // warm-up, untimed (compare_torch.py warms PyTorch up too)
  for (auto _ : state) benchmark::DoNotOptimize(step().data_ptr());
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(state.iterations() * state.range(3)), benchmark::Counter::kIsRate);
}

void BM_UNetTrainStep(benchmark::State& state) { unet_train_step(state, false); }
void BM_UNetTrainStepBf16(benchmark::State& state) { unet_train_step(state, true); }

void unet_inference(benchmark::State& state, bool bf16) {
  const Device dev = device_of(state);
  UNetCase c(state.range(1), state.range(2), state.range(3), dev);
  c.net.eval();
  NoGradGuard no_grad;
  std::optional<AutocastGuard> amp;
  if (bf16) amp.emplace(kBFloat16, dev.type);
  c.net.forward(c.x);  // warm-up, untimed
  sync(dev);
  for (auto _ : state) {
    Tensor logits = c.net.forward(c.x);
    sync(dev);
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(state.iterations() * state.range(3)), benchmark::Counter::kIsRate);
}
void BM_UNetInference(benchmark::State& state) { unet_inference(state, false); }
void BM_UNetInferenceBf16(benchmark::State& state) { unet_inference(state, true); }

// Mask R-CNN ResNet-50-FPN on 512 x 512 images (min_size = max_size = 512), random weights. The
// score threshold is 0 so that both frameworks keep 100 detections and run the mask head on them.
MaskRCNNOptions maskrcnn_bench_options() {
  MaskRCNNOptions o;
  o.min_size = o.max_size = 512;
  o.roi_heads.score_thresh = 0.0;
  return o;
}

// Two 512 x 512 images with three boxes and masks each (the same in compare_torch.py), on `dev`
// already, so that no step pays for host-to-device copies (torchvision's side is on the device).
std::vector<Sample> maskrcnn_bench_batch(Device dev) {
  std::vector<Sample> batch;
  for (int i = 0; i < 2; ++i) {
    Generator g(20 + static_cast<uint64_t>(i));
    Sample s;
    s.image = rand({3, 512, 512}, kFloat32, &g);
    s.boxes = from_vector<float>({40, 60, 200, 220, 250, 100, 480, 300, 100, 320, 260, 500}, {3, 4});
    s.labels = from_vector<int64_t>({1, 5, 17}, {3});
    s.masks = zeros({3, 512, 512}, kUInt8);
    for (int k = 0; k < 3; ++k) {
      const auto b = s.boxes.select(0, k).to_vector<float>();
      s.masks.select(0, k).narrow(0, int64_t(b[1]), int64_t(b[3] - b[1])).narrow(1, int64_t(b[0]), int64_t(b[2] - b[0])).fill_(1.0);
    }
    s.image = s.image.to(dev);
    s.boxes = s.boxes.to(dev);
    s.labels = s.labels.to(dev);
    s.masks = s.masks.to(dev);
    batch.push_back(s);
  }
  return batch;
}

// The benchmark model on `dev`, in training or evaluation mode.
std::unique_ptr<MaskRCNN> maskrcnn_bench_model(Device dev, bool train) {
  manual_seed(0);
  auto net = std::make_unique<MaskRCNN>(maskrcnn_bench_options());
  net->to(dev);
  if (train) net->train();
  else net->eval();
  return net;
}

void BM_MaskRCNNInference(benchmark::State& state) {
  const Device dev = device_of(state);
  auto net = maskrcnn_bench_model(dev, false);
  const Tensor image = maskrcnn_bench_batch(dev)[0].image;
  net->detect({image});  // warm-up, untimed
  sync(dev);
  for (auto _ : state) {
    auto d = net->detect({image});
    sync(dev);
    benchmark::DoNotOptimize(d.front().boxes.data_ptr());
  }
}

void BM_MaskRCNNTrainStep(benchmark::State& state) {
  const Device dev = device_of(state);
  auto net = maskrcnn_bench_model(dev, true);
  std::vector<Tensor> params;
  for (const Tensor& p : net->parameters())
    if (p.requires_grad()) params.push_back(p);
  SGD opt(params, SGDOptions{1e-4, 0.9});
  const auto batch = maskrcnn_bench_batch(dev);
  Generator g(3);
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = net->losses(batch, &g).total();
    loss.backward();
    opt.step();
    sync(dev);
    return loss;
  };
  step();  // warm-up, untimed
  for (auto _ : state) benchmark::DoNotOptimize(step().data_ptr());
}

}  // namespace

void register_models(const std::vector<int64_t>& devices) {
  // The paper's network on one 572x572 tile, and a width-16 network on a batch of four.
  const std::vector<std::vector<int64_t>> cases = {{64, 572, 1}, {16, 572, 4}};
  for (int64_t dev : devices)
    for (const auto& c : cases) {
      benchmark::RegisterBenchmark("BM_UNetTrainStep", BM_UNetTrainStep)
          ->ArgNames({"cuda", "width", "tile", "batch"})
          ->Args({dev, c[0], c[1], c[2]})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark("BM_UNetInference", BM_UNetInference)
          ->ArgNames({"cuda", "width", "tile", "batch"})
          ->Args({dev, c[0], c[1], c[2]})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark("BM_UNetTrainStepBf16", BM_UNetTrainStepBf16)
          ->ArgNames({"cuda", "width", "tile", "batch"})
          ->Args({dev, c[0], c[1], c[2]})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark("BM_UNetInferenceBf16", BM_UNetInferenceBf16)
          ->ArgNames({"cuda", "width", "tile", "batch"})
          ->Args({dev, c[0], c[1], c[2]})
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  for (int64_t dev : devices) {
    benchmark::RegisterBenchmark("BM_MaskRCNNInference", BM_MaskRCNNInference)
        ->ArgNames({"cuda", "size"})
        ->Args({dev, 512})
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_MaskRCNNTrainStep", BM_MaskRCNNTrainStep)
        ->ArgNames({"cuda", "size", "batch"})
        ->Args({dev, 512, 2})
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace tessera::bench

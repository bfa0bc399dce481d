// Whole models: a U-Net training step (forward, pixel-weighted cross-entropy, backward, SGD with
// momentum) and overlap-tile-free inference on one tile. scripts/compare_torch.py builds the same
// network in PyTorch (same layers, same tile) and times the same step.
//
// Sizes (the U-Net issue's): the paper's network (width 64, 572x572 -> 388x388, batch 1) and a
// width-16 network on a batch of four 572x572 tiles, on every device.
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

void BM_UNetTrainStep(benchmark::State& state) {
  const Device dev = device_of(state);
  UNetCase c(state.range(1), state.range(2), state.range(3), dev);
  c.net.train();
  SGD opt(c.net.parameters(), SGDOptions{1e-4, 0.99});
  for (auto _ : state) {
    opt.zero_grad();
    Tensor loss = pixel_weighted_cross_entropy(c.net.forward(c.x), c.target, c.weight);
    loss.backward();
    opt.step();
    sync(dev);
    benchmark::DoNotOptimize(loss.data_ptr());
  }
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(state.iterations() * state.range(3)), benchmark::Counter::kIsRate);
}

void BM_UNetInference(benchmark::State& state) {
  const Device dev = device_of(state);
  UNetCase c(state.range(1), state.range(2), state.range(3), dev);
  c.net.eval();
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor logits = c.net.forward(c.x);
    sync(dev);
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(state.iterations() * state.range(3)), benchmark::Counter::kIsRate);
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
    }
}

}  // namespace tessera::bench

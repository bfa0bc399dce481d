// Vision kernels at the shapes of the vision-kernels issue; scripts/compare_torch.py times the same
// shapes in PyTorch/torchvision. "fwd" rows time the forward pass; "fwdbwd" rows the forward and
// the backward of sum(out * g).
#include "bench_common.h"

namespace tessera::bench {

namespace {

// Boxes with centres uniform in [0, 1000)^2 and sides uniform in [10, 100), scores uniform.
std::pair<Tensor, Tensor> bench_boxes(int64_t n, Device dev) {
  Generator g(1);
  Tensor c = uniform({n, 2}, 0.0, 1000.0, kFloat32, &g), s = uniform({n, 2}, 10.0, 100.0, kFloat32, &g);
  Tensor boxes = cat({sub(c, mul(s, 0.5)), add(c, mul(s, 0.5))}, 1);
  return {boxes.to(dev), rand({n}, kFloat32, &g).to(dev)};
}

// rois for 2 images of 800x1088 (features at 1/4): uniform corners, sides 16..400.
Tensor bench_rois(int64_t n, Device dev) {
  Generator g(2);
  Tensor batch = randint(0, 2, {n, 1}, kInt64, &g).to(kFloat32);
  Tensor xy = uniform({n, 2}, 0.0, 700.0, kFloat32, &g), wh = uniform({n, 2}, 16.0, 400.0, kFloat32, &g);
  return cat({batch, xy, add(xy, wh)}, 1).to(dev);
}

template <class Fwd>
void run(benchmark::State& state, Device dev, const std::vector<Tensor>& leaves, bool backward, Fwd fwd) {
  for (auto _ : state) {
    for (const Tensor& l : leaves) l.set_grad(Tensor());
    Tensor out = fwd();
    if (backward) out.backward(ones_like(out));
    sync(dev);
    benchmark::DoNotOptimize(out.data_ptr());
  }
}

void BM_RoiAlign(benchmark::State& state) {
  const Device dev = device_of(state);
  const bool bwd = state.range(1) != 0;
  Tensor feats = randn({2, 256, 200, 272}, options(kFloat32, dev));
  if (bwd) feats.requires_grad_();
  Tensor rois = bench_rois(1024, dev);
  run(state, dev, {feats}, bwd, [&] { return roi_align(feats, rois, {7, 7}, 0.25, 2, true); });
}

void BM_Nms(benchmark::State& state) {
  const Device dev = device_of(state);
  auto [boxes, scores] = bench_boxes(state.range(1), dev);
  for (auto _ : state) {
    Tensor keep = nms(boxes, scores, 0.5);
    sync(dev);
    benchmark::DoNotOptimize(keep.data_ptr());
  }
}

void BM_Bilinear(benchmark::State& state) {
  const Device dev = device_of(state);
  const bool bwd = state.range(1) != 0;
  Tensor x = randn({1, 3, 600, 800}, options(kFloat32, dev));
  if (bwd) x.requires_grad_();
  run(state, dev, {x}, bwd, [&] { return interpolate(x, Int2{768, 1024}, std::nullopt, "bilinear", false); });
}

void BM_Conv3x3(benchmark::State& state) {
  const Device dev = device_of(state);
  const bool bwd = state.range(1) != 0;
  set_cudnn_benchmark(state.range(2) != 0);  // cuDNN: heuristics (0) or timed trials (1)
  Tensor x = randn({1, 64, 284, 284}, options(kFloat32, dev)), w = mul(randn({64, 64, 3, 3}, options(kFloat32, dev)), 0.05);
  Tensor b = zeros({64}, options(kFloat32, dev));
  if (bwd) {
    x.requires_grad_();
    w.requires_grad_();
    b.requires_grad_();
  }
  run(state, dev, {x, w, b}, bwd, [&] { return conv2d(x, w, b, 1, 1); });
}

void BM_MaxPool2x2(benchmark::State& state) {
  const Device dev = device_of(state);
  Tensor x = randn({1, 64, 568, 568}, options(kFloat32, dev));
  run(state, dev, {}, false, [&] { return max_pool2d(x, 2); });
}

}  // namespace

void register_vision(const std::vector<int64_t>& devices) {
  for (int64_t dev : devices) {
    for (int64_t bwd : {0, 1}) {
      benchmark::RegisterBenchmark("BM_RoiAlign", BM_RoiAlign)->ArgNames({"cuda", "bwd"})->Args({dev, bwd})->UseRealTime()->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark("BM_Bilinear", BM_Bilinear)->ArgNames({"cuda", "bwd"})->Args({dev, bwd})->UseRealTime()->Unit(benchmark::kMillisecond);
      // The cuDNN search mode matters on CUDA only: both are measured there, to justify the default.
      for (int64_t find : dev == 0 ? std::vector<int64_t>{0} : std::vector<int64_t>{0, 1})
        benchmark::RegisterBenchmark("BM_Conv3x3", BM_Conv3x3)->ArgNames({"cuda", "bwd", "find"})->Args({dev, bwd, find})->UseRealTime()->Unit(benchmark::kMillisecond);
    }
    for (int64_t n : {1000, 10000, 50000})
      benchmark::RegisterBenchmark("BM_Nms", BM_Nms)->ArgNames({"cuda", "n"})->Args({dev, n})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_MaxPool2x2", BM_MaxPool2x2)->ArgNames({"cuda"})->Args({dev})->UseRealTime()->Unit(benchmark::kMillisecond);
  }
}

}  // namespace tessera::bench

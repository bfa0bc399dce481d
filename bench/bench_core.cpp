// Core benchmarks: elementwise add, a full sum, softmax rows, and a 1024^3 matmul, on the CPU and
// (when a device is usable) on CUDA. Timings only: scripts/compare_torch.py sets them beside
// PyTorch's on the same machine. CUDA cases synchronise inside the timed loop.
#include <benchmark/benchmark.h>

#include "tessera.h"

namespace {

using namespace tessera;

bool usable(benchmark::State& state, Device device) {
  if (device.is_cuda() && !cuda::is_available()) {
    state.SkipWithError(("CUDA unavailable: " + cuda::unavailable_reason()).c_str());
    return false;
  }
  return true;
}

void sync(Device device) {
  if (device.is_cuda()) cuda::synchronize(device.index);
}

Device device_of(const benchmark::State& state) { return state.range(0) == 0 ? kCPU : cuda_device(0); }

// out = a + b over n float32 elements: 12 bytes per element moved.
void BM_Add(benchmark::State& state) {
  const Device dev = device_of(state);
  if (!usable(state, dev)) return;
  const int64_t n = state.range(1);
  Tensor a = rand({n}, options(kFloat32, dev)), b = rand({n}, options(kFloat32, dev));
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor c = add(a, b);
    sync(dev);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * n * 12);
}

void BM_Sum(benchmark::State& state) {
  const Device dev = device_of(state);
  if (!usable(state, dev)) return;
  const int64_t n = state.range(1);
  Tensor a = rand({n}, options(kFloat32, dev));
  for (auto _ : state) {
    Tensor s = sum(a);
    sync(dev);
    benchmark::DoNotOptimize(s.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * n * 4);
}

// softmax over the last dim of [rows, cols].
void BM_SoftmaxRows(benchmark::State& state) {
  const Device dev = device_of(state);
  if (!usable(state, dev)) return;
  const int64_t rows = state.range(1), cols = state.range(2);
  Tensor x = randn({rows, cols}, options(kFloat32, dev));
  for (auto _ : state) {
    Tensor y = softmax(x, -1);
    sync(dev);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 8);
}

void BM_Matmul(benchmark::State& state) {
  const Device dev = device_of(state);
  if (!usable(state, dev)) return;
  const int64_t n = state.range(1);
  Tensor a = randn({n, n}, options(kFloat32, dev)), b = randn({n, n}, options(kFloat32, dev));
  for (auto _ : state) {
    Tensor c = matmul(a, b);
    sync(dev);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * n * n * n * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

// Arg 0: 0 = cpu, 1 = cuda.
BENCHMARK(BM_Add)->ArgNames({"cuda", "n"})->Args({0, 1 << 24})->Args({1, 1 << 24})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Sum)->ArgNames({"cuda", "n"})->Args({0, 1 << 24})->Args({1, 1 << 24})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SoftmaxRows)->ArgNames({"cuda", "rows", "cols"})->Args({0, 4096, 1000})->Args({1, 4096, 1000})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Matmul)->ArgNames({"cuda", "n"})->Args({0, 1024})->Args({1, 1024})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

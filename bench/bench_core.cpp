// Core benchmarks: elementwise add, a full sum, softmax rows, and a 1024^3 matmul, on the CPU and
// (when a device is usable) on CUDA. Timings only: scripts/compare_torch.py sets them beside
// PyTorch's on the same machine. CUDA cases synchronise inside the timed loop.
#include "bench_common.h"

namespace tessera::bench {

namespace {

// out = a + b over n float32 elements: 12 bytes per element moved.
void BM_Add(benchmark::State& state) {
  const Device dev = device_of(state);
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
  const int64_t n = state.range(1);
  Tensor a = rand({n}, options(kFloat32, dev));
  for (auto _ : state) {
    Tensor s = sum(a);
    sync(dev);
    benchmark::DoNotOptimize(s.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * n * 4);
}

// A plain copy of 2^24 floats (read + write): the memory bandwidth the reductions are held to.
void BM_Copy(benchmark::State& state) {
  const Device dev = device_of(state);
  const int64_t n = state.range(1);
  Tensor a = rand({n}, options(kFloat32, dev)), c = empty({n}, options(kFloat32, dev));
  NoGradGuard no_grad;
  for (auto _ : state) {
    c.copy_(a);
    sync(dev);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * n * 8);
}

// Whole-tensor reductions of 2^24 floats: mean, amax, argmax (sum above).
template <int kOp>
void BM_Reduce(benchmark::State& state) {
  const Device dev = device_of(state);
  const int64_t n = state.range(1);
  Tensor a = randn({n}, options(kFloat32, dev));
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor s = kOp == 0 ? mean(a) : kOp == 1 ? amax(a) : argmax(a);
    sync(dev);
    benchmark::DoNotOptimize(s.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * n * 4);
}

// log_softmax and cross-entropy (mean over rows) of [rows, cols] logits.
void BM_LogSoftmaxRows(benchmark::State& state) {
  const Device dev = device_of(state);
  const int64_t rows = state.range(1), cols = state.range(2);
  Tensor x = randn({rows, cols}, options(kFloat32, dev));
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = log_softmax(x, -1);
    sync(dev);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 8);
}

void BM_CrossEntropy(benchmark::State& state) {
  const Device dev = device_of(state);
  const int64_t rows = state.range(1), cols = state.range(2);
  Tensor x = randn({rows, cols}, options(kFloat32, dev));
  Tensor t = randint(0, cols, {rows}, options(kInt64, dev));
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor l = cross_entropy(x, t);
    sync(dev);
    benchmark::DoNotOptimize(l.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 4);
}

// softmax over the last dim of [rows, cols].
void BM_SoftmaxRows(benchmark::State& state) {
  const Device dev = device_of(state);
  const int64_t rows = state.range(1), cols = state.range(2);
  Tensor x = randn({rows, cols}, options(kFloat32, dev));
  for (auto _ : state) {
    Tensor y = softmax(x, -1);
    sync(dev);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 8);
}

// BM_MatmulBf16: the same product of bfloat16 matrices (float32 sums; on the CPU tessera's
// bfloat16 GEMM, kernels/cpu/gemm_bf16.h).
template <bool Bf16>
void BM_Matmul(benchmark::State& state) {
  const Device dev = device_of(state);
  const int64_t n = state.range(1);
  const DType dt = Bf16 ? kBFloat16 : kFloat32;
  Tensor a = randn({n, n}, options(dt, dev)), b = randn({n, n}, options(dt, dev));
  for (auto _ : state) {
    Tensor c = matmul(a, b);
    sync(dev);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * n * n * n * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

}  // namespace

void register_core(const std::vector<int64_t>& devices) {
  for (int64_t dev : devices) {
    benchmark::RegisterBenchmark("BM_Add", BM_Add)->ArgNames({"cuda", "n"})->Args({dev, 1 << 24})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_Sum", BM_Sum)->ArgNames({"cuda", "n"})->Args({dev, 1 << 24})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_Copy", BM_Copy)->ArgNames({"cuda", "n"})->Args({dev, 1 << 24})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_Mean", BM_Reduce<0>)->ArgNames({"cuda", "n"})->Args({dev, 1 << 24})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_Amax", BM_Reduce<1>)->ArgNames({"cuda", "n"})->Args({dev, 1 << 24})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_Argmax", BM_Reduce<2>)->ArgNames({"cuda", "n"})->Args({dev, 1 << 24})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_LogSoftmaxRows", BM_LogSoftmaxRows)->ArgNames({"cuda", "rows", "cols"})->Args({dev, 4096, 1000})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_CrossEntropy", BM_CrossEntropy)->ArgNames({"cuda", "rows", "cols"})->Args({dev, 4096, 1000})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_SoftmaxRows", BM_SoftmaxRows)->ArgNames({"cuda", "rows", "cols"})->Args({dev, 4096, 1000})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_Matmul", BM_Matmul<false>)->ArgNames({"cuda", "n"})->Args({dev, 1024})->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("BM_MatmulBf16", BM_Matmul<true>)->ArgNames({"cuda", "n"})->Args({dev, 1024})->UseRealTime()->Unit(benchmark::kMillisecond);
  }
}

}  // namespace tessera::bench

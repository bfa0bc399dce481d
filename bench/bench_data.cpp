// Data pipeline throughput: samples per second through the DataLoader (2 workers) for the
// synthetic datasets with their training augmentation.
#include "bench_common.h"
#include "data/augment.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "data/transforms.h"
#include "data/weight_map.h"

namespace tessera::bench {

namespace {

template <class MakeLoader>
void run_loader(benchmark::State& state, MakeLoader make) {
  auto loader = make();
  int64_t epoch = 0, samples = 0;
  loader->start_epoch(epoch);
  for (auto _ : state) {
    auto batch = loader->next();
    if (!batch) {
      loader->start_epoch(++epoch);
      batch = loader->next();
    }
    samples += static_cast<int64_t>(batch->size());
    benchmark::DoNotOptimize(batch->front().image.data_ptr());
  }
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
}

// 256x256 touching cells: elastic deformation, rotation, shift, flips, gray values, weight map.
void BM_LoaderCells(benchmark::State& state) {
  run_loader(state, [] {
    LoaderOptions o;
    o.workers = 2;
    return std::make_unique<DataLoader>(std::make_shared<SyntheticCells>(64, 1), o, [](Sample s, DataRng& rng) {
      s = augment_unet(s, rng);
      s.weight = unet_weight_map(s.mask, s.instances);
      return s;
    });
  });
}

// 128x128 shapes: flip, resize to min 256 / max 512 (the detection transform).
void BM_LoaderShapes(benchmark::State& state) {
  run_loader(state, [] {
    LoaderOptions o;
    o.workers = 2;
    o.batch_size = 2;
    return std::make_unique<DataLoader>(std::make_shared<SyntheticShapes>(64, 1), o, [](Sample s, DataRng& rng) {
      if (rng.coin()) s = hflip(s);
      return resize_for_detection(s, 256, 512);
    });
  });
}

}  // namespace

void register_data() {
  benchmark::RegisterBenchmark("BM_LoaderCells", BM_LoaderCells)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_LoaderShapes", BM_LoaderShapes)->UseRealTime()->Unit(benchmark::kMillisecond);
}

}  // namespace tessera::bench

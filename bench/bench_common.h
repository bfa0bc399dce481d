// Shared pieces of the benchmark suite: device selection and synchronisation. Benchmarks take the
// device as their first argument ("cuda": 0 or 1); CUDA cases are registered only when usable.
#pragma once

#include <benchmark/benchmark.h>

#include <vector>

#include "tessera.h"

namespace tessera::bench {

inline void sync(Device device) {
  if (device.is_cuda()) cuda::synchronize(device.index);
}

inline Device device_of(const benchmark::State& state) { return state.range(0) == 0 ? kCPU : cuda_device(0); }

void register_core(const std::vector<int64_t>& devices);
void register_vision(const std::vector<int64_t>& devices);
void register_data();
void register_models(const std::vector<int64_t>& devices);

}  // namespace tessera::bench

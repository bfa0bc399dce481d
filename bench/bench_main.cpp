// tessera_bench: registers every benchmark for the CPU, and for CUDA when a device is usable
// (otherwise one line says why), then runs Google Benchmark's main loop.
#include <cstdio>

#include "bench_common.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/matmul.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("cpu_blas", tessera::cpu_blas_info());
  benchmark::AddCustomContext("cpu_bf16", tessera::cpu_bf16_kernels() ? tessera::cpu::gemm_bf16_kernel_name() : "through float32");
  std::vector<int64_t> devices = {0};
  if (tessera::cuda::is_available()) devices.push_back(1);
  else std::fprintf(stderr, "tessera_bench: CUDA cases skipped: %s\n", tessera::cuda::unavailable_reason().c_str());
  tessera::bench::register_core(devices);
  tessera::bench::register_vision(devices);
  tessera::bench::register_data();
  tessera::bench::register_models(devices);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

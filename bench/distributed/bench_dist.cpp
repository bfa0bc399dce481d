// tessera::dist under mpirun: all-reduce time and bus bandwidth against message size, beside the
// MPI's own MPI_Allreduce without tessera, and a data-parallel U-Net step broken down into
// backward (with the bucket all-reduces it starts) and the wait for the rest.
//
//   mpirun --allow-run-as-root -np 2 build/bench/tessera_dist_bench
//
// Every case runs a fixed number of iterations (ranks must make the same collective calls; Google
// Benchmark's adaptive count would differ between them); rank 0 reports. Bus bandwidth is NCCL's
// convention: bytes * 2 (n - 1) / n / time.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <chrono>
#include <vector>

#include "data/synthetic.h"
#include "data/weight_map.h"
#include "distributed/ddp.h"
#include "distributed/dist.h"
#include "models/unet.h"
#include "tessera.h"

namespace {

using namespace tessera;

void set_bandwidth(benchmark::State& state, int64_t bytes) {
  const double n = dist::world_size();
  state.counters["bus_GBps"] = benchmark::Counter(static_cast<double>(bytes) * 2.0 * (n - 1) / n * static_cast<double>(state.iterations()) / 1e9,
                                                  benchmark::Counter::kIsRate);
  state.SetBytesProcessed(bytes * state.iterations());
}

void BM_AllReduceTessera(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  Tensor t = ones({bytes / 4});
  dist::barrier();
  for (auto _ : state) dist::all_reduce(t);
  set_bandwidth(state, bytes);
}

void BM_AllReduceMPI(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  std::vector<float> v(static_cast<size_t>(bytes / 4), 1.f);
  MPI_Barrier(MPI_COMM_WORLD);
  for (auto _ : state) MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  set_bandwidth(state, bytes);
}

// One data-parallel training step of a U-Net (width 16, depth 4, 572 -> 388, batch 1 per rank):
// the time of forward + backward (the bucket all-reduces start inside it) and of the wait after.
void BM_DDPUNetStep(benchmark::State& state) {
  manual_seed(1);
  UNetOptions o;
  o.width = 16;
  o.dropout = 0.0;
  UNet net(o);
  dist::DistributedDataParallel ddp(net);
  SGD opt(net.parameters(), SGDOptions{0.01, 0.9});
  SyntheticCells cells(1, 3, 572, 572);
  const Sample s = cells.get(0);
  const Tensor x = s.image.unsqueeze(0), t = s.mask.narrow(0, 92, 388).narrow(1, 92, 388).unsqueeze(0).contiguous();
  const Tensor w = ones({1, 388, 388});
  double backward_s = 0, wait_s = 0;
  for (auto _ : state) {
    opt.zero_grad();
    const auto t0 = std::chrono::steady_clock::now();
    pixel_weighted_cross_entropy(net.forward(x), t, w).backward();  // the end-of-backward callback waits
    backward_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    wait_s += ddp.last_wait_seconds();
    ddp.finish();
    opt.step();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["fwd_bwd_ms"] = 1e3 * backward_s / n;  // includes the wait below
  state.counters["comm_wait_ms"] = 1e3 * wait_s / n;     // all-reduce time that backward did not hide
  state.counters["early_buckets"] = static_cast<double>(ddp.last_buckets_started_early());
  state.counters["buckets"] = static_cast<double>(ddp.num_buckets());
  state.counters["ranks"] = dist::world_size();
}

// Ranks other than 0 run the same benchmarks and report nothing.
class Quiet : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  tessera::dist::init();
  for (int64_t bytes = 4096; bytes <= (int64_t{64} << 20); bytes *= 4) {
    const int iters = bytes >= (int64_t{16} << 20) ? 20 : 200;
    benchmark::RegisterBenchmark("BM_AllReduceTessera", BM_AllReduceTessera)->Arg(bytes)->Iterations(iters)->UseRealTime();
    benchmark::RegisterBenchmark("BM_AllReduceMPI", BM_AllReduceMPI)->Arg(bytes)->Iterations(iters)->UseRealTime();
  }
  benchmark::RegisterBenchmark("BM_DDPUNetStep", BM_DDPUNetStep)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  if (tessera::dist::rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    Quiet quiet;
    benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  tessera::dist::finalize();
  return 0;
}

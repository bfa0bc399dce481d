// The CPU half of "one kernel body, two loops": TS_HD, parallel_for (OpenMP), atomic_add.
//
// A per-element kernel is a functor with `TS_HD void operator()(int64_t i) const`. On the CPU it
// runs under parallel_for; under nvcc the same functor runs in a grid-stride loop
// (core/cuda/launch.cuh). The functor holds no CUDA API and no OpenMP.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "core/hd.h"

namespace tessera {

// Number of CPU threads used by parallel_for and by OpenBLAS (which shares OpenMP's pool).
// Set once from TESSERA_NUM_THREADS (default: the number of cores); set_num_threads overrides.
int num_threads();
void set_num_threads(int n);

// Caps num_threads() on the calling thread for its scope (data-loader workers run their tensor
// ops single-threaded: the workers themselves are the parallelism).
class ScopedThreads {
 public:
  explicit ScopedThreads(int n);
  ~ScopedThreads();
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int previous_;
  int omp_previous_;
};

// Work below this many elements runs on the calling thread: a parallel region costs ~µs.
inline constexpr int64_t kParallelGrain = 32768;

template <class F>
void parallel_for(int64_t n, const F& f, int64_t grain = kParallelGrain) {
  if (n <= 0) return;
  const int threads = num_threads();
  if (n < grain || threads == 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// Calls f(begin, end) on disjoint chunks covering [0, n), for loops with per-chunk setup.
template <class F>
void parallel_chunks(int64_t n, int64_t grain, const F& f) {
  if (n <= 0) return;
  const int threads = num_threads();
  if (grain < 1) grain = 1;
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks > threads) chunks = threads;
  if (chunks <= 1) {
    f(int64_t{0}, n);
    return;
  }
  const int64_t per = (n + chunks - 1) / chunks;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * per;
    const int64_t e = b + per < n ? b + per : n;
    if (b < e) f(b, e);
  }
}

// The CPU launcher: what kernels/<op>.h implementations are templated on.
// A functor may also offer `void range(int64_t begin, int64_t end) const`, doing the same work for a
// block of consecutive indices (walking strided operands row by row instead of dividing per
// element); the CPU launcher then hands each thread one block. The device keeps calling f(i).
template <class F>
concept RangeKernel = requires(const F& f, int64_t i) { f.range(i, i); };

// Whether CPU launches run every kernel through its per-element operator()(i) — the body the GPU
// runs — instead of a range() fast path or a CPU-only traversal (RoIAlign's). Off by default; the
// tests turn it on (CpuPerElementScope) to execute on the CPU every functor that CUDA launches and
// compare it with the CPU's own path.
bool cpu_per_element();
class CpuPerElementScope {
 public:
  explicit CpuPerElementScope(bool on = true);
  ~CpuPerElementScope();
  CpuPerElementScope(const CpuPerElementScope&) = delete;
  CpuPerElementScope& operator=(const CpuPerElementScope&) = delete;

 private:
  bool previous_;
};

struct CpuLaunch {
  template <class F>
  void operator()(int64_t n, const F& f, const char* /*name*/ = "") const {
    if constexpr (RangeKernel<F>) {
      if (!cpu_per_element()) {
        parallel_chunks(n, kParallelGrain, [&](int64_t b, int64_t e) { f.range(b, e); });
        return;
      }
    }
    parallel_for(n, f);
  }
  static constexpr bool is_cuda = false;
};

// Adds v to *addr atomically: atomicAdd on the device, std::atomic_ref on the host.
template <class T>
TS_HD void atomic_add(T* addr, T v) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, int64_t>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(addr), static_cast<unsigned long long>(v));
  } else {
    atomicAdd(addr, v);
  }
#else
  std::atomic_ref<T>(*addr).fetch_add(v, std::memory_order_relaxed);
#endif
}

}  // namespace tessera

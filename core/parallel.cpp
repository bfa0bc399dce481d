// The one place that decides how many CPU threads tessera (and OpenBLAS) use.
#include "core/parallel.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/error.h"

namespace tessera {

namespace {

int default_threads() {
  if (const char* env = std::getenv("TESSERA_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    TS_CHECK(end != env && *end == '\0' && v >= 1 && v <= 4096,
             "TESSERA_NUM_THREADS must be a positive integer, got '", env, "'");
    return static_cast<int>(v);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::atomic<int>& thread_setting() {
  static std::atomic<int> n{[] {
    int v = default_threads();
    // OpenBLAS's OpenMP build sizes its work by omp_get_max_threads(): one setting for both.
    omp_set_num_threads(v);
    return v;
  }()};
  return n;
}

thread_local int thread_cap = 0;  // 0: no cap on this thread

}  // namespace

int num_threads() {
  const int n = thread_setting().load(std::memory_order_relaxed);
  return thread_cap > 0 && thread_cap < n ? thread_cap : n;
}

ScopedThreads::ScopedThreads(int n) : previous_(thread_cap), omp_previous_(omp_get_max_threads()) {
  TS_CHECK(n >= 1, "ScopedThreads: need at least one thread");
  thread_cap = n;
  omp_set_num_threads(std::min(n, num_threads()));  // OpenBLAS sizes its work from this thread's ICV
}
ScopedThreads::~ScopedThreads() {
  thread_cap = previous_;
  omp_set_num_threads(omp_previous_);
}

void set_num_threads(int n) {
  TS_CHECK(n >= 1, "set_num_threads: need at least one thread, got ", n);
  thread_setting().store(n);
  omp_set_num_threads(n);
}

namespace {
std::atomic<bool> g_cpu_per_element{false};
}  // namespace

bool cpu_per_element() { return g_cpu_per_element.load(std::memory_order_relaxed); }
CpuPerElementScope::CpuPerElementScope(bool on) : previous_(g_cpu_per_element.exchange(on)) {}
CpuPerElementScope::~CpuPerElementScope() { g_cpu_per_element.store(previous_); }

}  // namespace tessera

// The one place that decides how many CPU threads tessera (and OpenBLAS) use.
#include "core/parallel.h"

#include <omp.h>

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

}  // namespace

int num_threads() { return thread_setting().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  TS_CHECK(n >= 1, "set_num_threads: need at least one thread, got ", n);
  thread_setting().store(n);
  omp_set_num_threads(n);
}

}  // namespace tessera

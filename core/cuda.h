// The CUDA runtime as the rest of tessera sees it: availability, synchronisation, memory stats.
// Safe to include and call in a CPU-only build (everything reports "no CUDA").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera::cuda {

// True when tessera was built with CUDA and a driver and at least one device are usable.
// Never throws; the first call probes the driver (lazily, never at static-initialisation time).
bool is_available();
int device_count();
// Why is_available() is false, in words ("built without CUDA", "no driver: ...").
std::string unavailable_reason();
bool built_with_cuda();

// Waits for all work queued on device `index`'s stream (-1: every device).
void synchronize(int index = -1);

struct MemoryStats {
  size_t allocated = 0;       // bytes in live tensors
  size_t reserved = 0;        // bytes held from cudaMalloc, live or cached
  size_t peak_allocated = 0;  // high-water mark of `allocated` since the last reset
  uint64_t device_allocs = 0;  // cudaMalloc calls so far
  uint64_t device_frees = 0;   // cudaFree calls so far
};
MemoryStats memory_stats(int index = 0);
void reset_peak_memory_stats(int index = 0);
// Returns every cached, unused block to the driver.
void empty_cache();

}  // namespace tessera::cuda

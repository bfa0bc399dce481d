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

// Errors that kernels flag on the device instead of the host checking first (which would wait for
// the device): an index out of range. A kernel writes its code into the device's error word
// (pinned host memory mapped into the device); the host raises it at its next synchronisation
// (synchronize(), a copy to the host) or, under TESSERA_SYNC_DEBUG=1, right after the op.
enum class DeviceError : int { None = 0, IndexSelect = 1, IndexAdd = 2, Gather = 3, ScatterAdd = 4 };
const char* device_error_op(DeviceError e);  // "index_select", ...
int* device_error_word(int device);          // the word, as the device sees it (CUDA builds)
// Throws (and clears the word) if a kernel on `device` flagged an error. Call after a synchronisation.
void check_device_errors(int device);

struct MemoryStats {
  size_t allocated = 0;       // bytes in live tensors
  size_t reserved = 0;        // bytes held from cudaMalloc, live or cached
  size_t peak_allocated = 0;  // high-water mark of `allocated` since the last reset
  uint64_t device_allocs = 0;  // cudaMalloc calls so far (segments)
  uint64_t device_frees = 0;   // cudaFree calls so far
  size_t segments = 0;         // segments held
  size_t largest_free = 0;     // the largest cached block
  uint64_t splits = 0, merges = 0;
};
MemoryStats memory_stats(int index = 0);
void reset_peak_memory_stats(int index = 0);
// One line of the caching allocator's state (allocated, reserved, peak, segments, device calls,
// splits, merges), for --verbose progress lines.
std::string memory_summary(int index = 0);
// Returns every cached, unused block to the driver.
void empty_cache();

}  // namespace tessera::cuda

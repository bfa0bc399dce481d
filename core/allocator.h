// Allocator and Storage: shared, device-resident bytes that tensors view.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/device.h"

namespace tessera {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr) = 0;
};

// 64-byte aligned host memory (one cache line; the widest AVX-512 load). Blocks of 1 MiB and more
// are cached on size-binned free lists when freed (TESSERA_CPU_CACHE_MB caps the cache, default
// 4096, 0 = off; always off under AddressSanitizer). Blocks of 4 MiB and more are advised as
// transparent huge pages, each starting at one of 16 cache-set offsets (TESSERA_CPU_HUGE_PAGES=0
// turns that off; off under AddressSanitizer). See core/allocator.cpp for the measurements.
Allocator* cpu_allocator();

struct CpuMemoryStats {
  size_t allocated = 0;       // bytes of cached-size blocks handed out: live tensors and kernel scratch (blocks >= 1 MiB)
  size_t cached = 0;          // bytes held in the free lists
  size_t peak_allocated = 0;  // high-water mark of `allocated` since the last reset
  uint64_t system_allocs = 0; // large blocks taken from the system
  uint64_t hits = 0;          // large requests served from the cache
  uint64_t huge_page_blocks = 0;  // blocks of 4 MiB and more taken as transparent huge pages
};
CpuMemoryStats cpu_memory_stats();
void cpu_reset_peak_memory_stats();
// Returns every cached, unused host block to the system.
void cpu_empty_cache();
// Sets the cap on cached host bytes (0 = no caching; no effect under AddressSanitizer), giving back
// blocks over it; returns the previous cap.
size_t cpu_set_cache_limit(size_t bytes);
// The caching allocator of CUDA device `index`; an Error when CUDA is not usable.
Allocator* cuda_allocator(int index);
Allocator* allocator_for(Device d);

// Bytes on one device. Freed through its allocator when the last tensor that views it goes.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Bumped by every in-place write, so that autograd can tell when a saved tensor was modified.
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;
  std::atomic<uint64_t> version_{0};
};

}  // namespace tessera

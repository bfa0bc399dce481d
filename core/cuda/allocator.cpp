// The CUDA caching allocator: size-binned free lists so that steady-state training never calls
// cudaMalloc/cudaFree; empty_cache(); statistics; out-of-memory frees the cache and retries once.
//
// Blocks are tied to the device's one stream (core/cuda/context.h): a block freed by one kernel
// and handed to the next is safe because both are ordered on that stream. When more streams come,
// a block must remember the streams that used it before it is reused elsewhere.
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "core/cuda.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"

namespace tessera::cuda {

namespace {

// Requests are rounded up to a bin: 512-byte steps below 1 MiB, then steps of 1/8 of the
// enclosing power of two, so no block wastes more than 12.5% and equal shapes share a bin.
size_t bin_size(size_t n) {
  constexpr size_t kSmallStep = 512;
  constexpr size_t kSmallLimit = size_t{1} << 20;
  if (n == 0) n = 1;
  if (n <= kSmallLimit) return (n + kSmallStep - 1) / kSmallStep * kSmallStep;
  size_t pow2 = kSmallLimit;
  while (pow2 < n) pow2 <<= 1;
  size_t step = pow2 / 8;
  return (n + step - 1) / step * step;
}

std::string format_bytes(size_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
  return buf;
}

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}

  void* allocate(size_t nbytes) override {
    const size_t size = bin_size(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* ptr = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size;
    } else {
      ptr = device_malloc(size, nbytes);
    }
    live_[ptr] = size;
    stats_.allocated += size;
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
    return ptr;
  }

  void deallocate(void* ptr) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours: nothing sensible to do in a destructor path
    const size_t size = it->second;
    live_.erase(it);
    stats_.allocated -= size;
    free_[size].push_back(ptr);
    cached_bytes_ += size;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated = stats_.allocated;
  }

 private:
  void* device_malloc(size_t size, size_t requested) {
    DeviceGuard guard(device_);
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      // Cached blocks of other sizes may be what stands in the way: give them back and retry.
      TS_CUDA_CHECK(cudaStreamSynchronize(stream(device_)));
      release_cached_locked();
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      cudaGetLastError();
      TS_ERROR("CUDA out of memory on cuda:", device_, ": tried to allocate ", format_bytes(requested),
               " (", requested, " bytes); tessera has ", format_bytes(stats_.allocated),
               " allocated in tensors, ", format_bytes(stats_.reserved), " reserved, peak ",
               format_bytes(stats_.peak_allocated), "; the device has ", format_bytes(free_b),
               " free of ", format_bytes(total_b), " (", cudaGetErrorName(err), ")");
    }
    stats_.reserved += size;
    stats_.device_allocs += 1;
    return ptr;
  }

  void release_cached_locked() {
    if (cached_bytes_ == 0) return;
    DeviceGuard guard(device_);
    cudaStreamSynchronize(stream(device_));
    for (auto& [size, ptrs] : free_) {
      for (void* p : ptrs) {
        cudaFree(p);
        stats_.reserved -= size;
        stats_.device_frees += 1;
      }
      ptrs.clear();
    }
    free_.clear();
    cached_bytes_ = 0;
  }

  int device_;
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // bin size -> cached blocks
  std::unordered_map<void*, size_t> live_;     // block -> bin size
  size_t cached_bytes_ = 0;
  MemoryStats stats_;
};

// Never destroyed: tensors may outlive static destruction order, and the driver may already be
// shutting down at exit.
CachingAllocator& allocator(int device) {
  static std::vector<CachingAllocator*> all = [] {
    std::vector<CachingAllocator*> v;
    for (int i = 0; i < device_count(); ++i) v.push_back(new CachingAllocator(i));
    return v;
  }();
  TS_CHECK(is_available(), "CUDA is not available: ", unavailable_reason());
  TS_CHECK(device >= 0 && device < static_cast<int>(all.size()), "cuda:", device,
           " does not exist: this machine has ", all.size(), " CUDA device(s)");
  return *all[device];
}

}  // namespace

MemoryStats memory_stats(int index) { return allocator(index).stats(); }
void reset_peak_memory_stats(int index) { allocator(index).reset_peak(); }
void empty_cache() {
  for (int i = 0; i < device_count(); ++i) allocator(i).empty_cache();
}

}  // namespace tessera::cuda

namespace tessera {
Allocator* cuda_allocator(int index) { return &cuda::allocator(index); }
}  // namespace tessera

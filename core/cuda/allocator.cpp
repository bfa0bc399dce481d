// The CUDA caching allocator: steady-state training never calls cudaMalloc/cudaFree. The block
// bookkeeping is BlockPool's (core/block_pool.h: 512-byte rounding, 2 MiB / 20 MiB segments, best
// fit, splitting, merging with free neighbours, as PyTorch's allocator), so the varying shapes of
// Mask R-CNN reuse cached memory instead of growing the cache; this file adds cudaMalloc/cudaFree,
// the lock, the out-of-memory message and the statistics.
//
// Blocks are tied to the device's one stream (core/cuda/context.h): a block freed by one kernel
// and handed to the next is safe because both are ordered on that stream. When more streams come,
// a block must remember the streams that used it before it is reused elsewhere.
#include <mutex>
#include <vector>

#include "core/allocator.h"
#include "core/block_pool.h"
#include "core/cuda.h"
#include "core/cuda/check.h"
#include "core/cuda/context.h"

namespace tessera::cuda {

namespace {

std::string format_bytes(size_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
  return buf;
}

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device)
      : device_(device),
        pool_([this](size_t bytes) { return device_malloc(bytes); },
              [this](void* p, size_t) {
                DeviceGuard guard(device_);
                cudaFree(p);
              }) {}

  void* allocate(size_t nbytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    void* ptr = pool_.allocate(nbytes);
    if (ptr == nullptr) {
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      cudaGetLastError();
      const BlockPool::Stats st = pool_.stats();
      TS_ERROR("CUDA out of memory on cuda:", device_, ": tried to allocate ", format_bytes(nbytes), " (", nbytes,
               " bytes); tessera has ", format_bytes(st.allocated), " allocated in tensors, ", format_bytes(st.reserved),
               " reserved, peak ", format_bytes(st.peak_allocated), "; the device has ", format_bytes(free_b), " free of ",
               format_bytes(total_b), " (", cudaGetErrorName(last_error_), ")");
    }
    return ptr;
  }

  void deallocate(void* ptr) override {
    std::lock_guard<std::mutex> lock(mu_);
    pool_.deallocate(ptr);  // false: not ours; nothing sensible to do in a destructor path
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    synchronize_stream();
    pool_.release_cached();
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    const BlockPool::Stats st = pool_.stats();
    MemoryStats m;
    m.allocated = st.allocated;
    m.reserved = st.reserved;
    m.peak_allocated = st.peak_allocated;
    m.device_allocs = st.segment_allocs;
    m.device_frees = st.segment_frees;
    m.segments = st.segments;
    m.largest_free = st.largest_free;
    m.splits = st.splits;
    m.merges = st.merges;
    return m;
  }

  std::string summary() {
    std::lock_guard<std::mutex> lock(mu_);
    return pool_.summary();
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    pool_.reset_peak();
  }

 private:
  // A segment from the driver; nullptr when it has no room (BlockPool then releases the cache
  // and asks once more). Before segments are freed the stream must be idle: synchronize first.
  void* device_malloc(size_t size) {
    DeviceGuard guard(device_);
    void* ptr = nullptr;
    const cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaSuccess) return ptr;
    cudaGetLastError();
    last_error_ = err;
    if (err != cudaErrorMemoryAllocation) TS_CUDA_CHECK(err);
    synchronize_stream();  // the retry frees cached segments: kernels may still be using them
    return nullptr;
  }

  void synchronize_stream() {
    DeviceGuard guard(device_);
    cudaStreamSynchronize(stream(device_));
  }

  int device_;
  std::mutex mu_;
  cudaError_t last_error_ = cudaSuccess;
  BlockPool pool_;
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
std::string memory_summary(int index) { return allocator(index).summary(); }
void reset_peak_memory_stats(int index) { allocator(index).reset_peak(); }
void empty_cache() {
  for (int i = 0; i < device_count(); ++i) allocator(i).empty_cache();
}

}  // namespace tessera::cuda

namespace tessera {
Allocator* cuda_allocator(int index) { return &cuda::allocator(index); }
}  // namespace tessera

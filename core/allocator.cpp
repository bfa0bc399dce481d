// The CPU allocator (64-byte aligned, caching the large blocks) and Storage.
//
// Blocks of 1 MiB and more are what glibc serves with mmap and returns with munmap, so every fresh
// feature map of a convolutional network would otherwise fault in and zero its pages again on each
// step (PyTorch's CPU allocator has the same cost). Those blocks are therefore kept on size-binned
// free lists when freed and handed out again for the next request of the same bin, up to a cap
// (TESSERA_CPU_CACHE_MB, default 4096; 0 turns the cache off); a full cache gives back blocks of
// other bins to take the newly freed one. Smaller blocks go straight to
// aligned_alloc/free. Under AddressSanitizer the cache is off, so use-after-free stays visible.
#include "core/allocator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include <sys/mman.h>

#include "core/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define TESSERA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TESSERA_ASAN 1
#endif
#endif

namespace tessera {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kCacheFrom = size_t{1} << 20;
// Blocks of 4 MiB and more are asked for as transparent huge pages (madvise; the kernel's
// /sys/kernel/mm/transparent_hugepage/enabled must say madvise or always). On the 2-core Zen 4 VM
// a sum over 2^24 floats read 30 GB/s from 4 KiB pages and 60 GB/s from huge pages (two threads,
// a plain AVX-512 loop): the page walks of a guest's 4 KiB pages, not the memory, set the pace.
// Huge pages make physical addresses follow the virtual ones over 2 MiB, so blocks that all
// started on a 2 MiB boundary would share cache sets, stream for stream (the models ran 30-45%
// slower that way); each block therefore starts at one of 16 offsets 4 KiB + 64 bytes apart.
// TESSERA_CPU_HUGE_PAGES=0 turns this off.
constexpr size_t kHugeFrom = size_t{4} << 20;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kColorStep = 4096 + 64;
constexpr size_t kColors = 16;
static_assert(kColors * kColorStep < kHugePage, "a block's offset stays inside its first huge page");

bool huge_pages_from_env() {
#ifdef TESSERA_ASAN
  return false;
#else
  const char* v = std::getenv("TESSERA_CPU_HUGE_PAGES");
  if (v == nullptr || *v == '\0') return true;
  if (std::string(v) == "0") return false;
  if (std::string(v) != "1")
    std::fprintf(stderr, "tessera: TESSERA_CPU_HUGE_PAGES='%s' is neither 0 nor 1; using 1\n", v);
  return true;
#endif
}

// 1/8 steps of the enclosing power of two: no block wastes more than 12.5%, and equal shapes
// share a bin.
size_t bin_size(size_t n) {
  size_t pow2 = kCacheFrom;
  while (pow2 < n) pow2 <<= 1;
  const size_t step = pow2 / 8;
  return (n + step - 1) / step * step;
}

size_t cache_limit_from_env() {
#ifdef TESSERA_ASAN
  return 0;
#else
  const char* v = std::getenv("TESSERA_CPU_CACHE_MB");
  if (v == nullptr || *v == '\0') return size_t{4096} << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || mb < 0) {  // no exception here: this runs at the first allocation
    std::fprintf(stderr, "tessera: TESSERA_CPU_CACHE_MB='%s' is not a number of MiB; using 4096\n", v);
    return size_t{4096} << 20;
  }
  return static_cast<size_t>(mb) << 20;
#endif
}

class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() : limit_(cache_limit_from_env()), huge_pages_(huge_pages_from_env()) {}
  ~CpuAllocator() override { empty_cache(); }

  void* allocate(size_t nbytes) override {
    size_t rounded = (nbytes + kAlign - 1) / kAlign * kAlign;
    if (rounded == 0) rounded = kAlign;
    if (rounded < kCacheFrom) return system_alloc(rounded, nbytes);
    const size_t size = bin_size(rounded);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached -= size;
      ++stats_.hits;
    } else {
      p = block_alloc(size);
      if (p == nullptr) {  // out of memory: give the cache back and try once more
        release_locked();
        p = block_alloc(size);
      }
      TS_CHECK(p != nullptr, "cpu allocator: out of memory allocating ", nbytes, " bytes");
      ++stats_.system_allocs;
    }
    live_[p] = size;
    stats_.allocated += size;
    if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
    return p;
  }

  void deallocate(void* ptr) override {
    if (ptr == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(ptr);
      if (it != live_.end()) {
        const size_t size = it->second;
        live_.erase(it);
        stats_.allocated -= size;
        // A full cache makes room by giving back blocks of other bins, largest first, so that
        // sizes a workload no longer asks for (e.g. earlier image sizes) do not pin the cap.
        if (size <= limit_ && stats_.cached + size > limit_) evict_locked(stats_.cached + size - limit_, size);
        if (stats_.cached + size <= limit_) {
          free_[size].push_back(ptr);
          stats_.cached += size;
          return;
        }
        block_free(ptr, size);  // the cache is full
        return;
      }
    }
    std::free(ptr);  // a small block
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_locked();
  }

  CpuMemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  size_t set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t before = limit_;
#ifndef TESSERA_ASAN
    limit_ = bytes;
    if (stats_.cached > limit_) evict_locked(stats_.cached - limit_, 0);
#else
    (void)bytes;  // no caching under AddressSanitizer: every block goes back at once
#endif
    return before;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_allocated = stats_.allocated;
  }

 private:
  // A block of a cached size: 64-byte aligned, or a huge-page block at its colour's offset (under
  // 2 MiB, so the allocation's start is the block's address rounded down to 2 MiB).
  bool is_huge(size_t size) const { return huge_pages_ && size >= kHugeFrom; }
  void* block_alloc(size_t size) {
    if (!is_huge(size)) return std::aligned_alloc(kAlign, size);
    const size_t offset = (next_color_++ % kColors) * kColorStep;
    void* base = std::aligned_alloc(kHugePage, size + offset);
    if (base == nullptr) return nullptr;
    madvise(base, size + offset, MADV_HUGEPAGE);  // advice only: where refused, 4 KiB pages serve
    ++stats_.huge_page_blocks;
    return static_cast<char*>(base) + offset;
  }
  void block_free(void* p, size_t size) {
    if (is_huge(size)) p = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t{kHugePage - 1});
    std::free(p);
  }
  static void* system_alloc(size_t rounded, size_t nbytes) {
    void* p = std::aligned_alloc(kAlign, rounded);
    TS_CHECK(p != nullptr, "cpu allocator: out of memory allocating ", nbytes, " bytes");
    return p;
  }

  // Frees cached blocks, from the largest bin down and never of bin `keep`, until `bytes` are gone.
  void evict_locked(size_t bytes, size_t keep) {
    for (auto it = free_.rbegin(); bytes > 0 && it != free_.rend(); ++it) {
      if (it->first == keep) continue;
      while (bytes > 0 && !it->second.empty()) {
        block_free(it->second.back(), it->first);
        it->second.pop_back();
        stats_.cached -= it->first;
        bytes -= std::min(bytes, it->first);
      }
    }
  }

  void release_locked() {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) block_free(p, size);
    free_.clear();
    stats_.cached = 0;
  }

  size_t limit_;  // guarded by mu_
  const bool huge_pages_;
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  std::unordered_map<void*, size_t> live_;
  size_t next_color_ = 0;
  CpuMemoryStats stats_;
};

CpuAllocator& cpu_caching_allocator() {
  // Never destroyed: tensors in static objects may be freed after this function's statics would be.
  static CpuAllocator* instance = new CpuAllocator;
  return *instance;
}

}  // namespace

Allocator* cpu_allocator() { return &cpu_caching_allocator(); }
CpuMemoryStats cpu_memory_stats() { return cpu_caching_allocator().stats(); }
void cpu_reset_peak_memory_stats() { cpu_caching_allocator().reset_peak(); }
void cpu_empty_cache() { cpu_caching_allocator().empty_cache(); }
size_t cpu_set_cache_limit(size_t bytes) { return cpu_caching_allocator().set_limit(bytes); }

Allocator* allocator_for(Device d) { return d.is_cpu() ? cpu_allocator() : cuda_allocator(d.index); }

Storage::Storage(size_t nbytes, Device device)
    : nbytes_(nbytes), device_(device), allocator_(allocator_for(device)) {
  data_ = allocator_->allocate(nbytes);
}

Storage::~Storage() {
  if (data_) allocator_->deallocate(data_);
}

}  // namespace tessera

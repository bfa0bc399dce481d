// BlockPool: the bookkeeping of a caching allocator, with no device API in it (so the CPU tests
// exercise it), after PyTorch's CUDA caching allocator:
//   - requests are rounded up to 512 bytes;
//   - small requests (<= 1 MiB) are carved from 2 MiB segments, large ones from segments of 20 MiB
//     (requests under 10 MiB) or of the request rounded up to 2 MiB;
//   - a request takes the smallest cached block of its pool that fits (best fit), split when the
//     remainder is worth keeping (>= 512 bytes in the small pool, > 1 MiB in the large one);
//   - a freed block merges with the free blocks beside it in its segment, so varying shapes (Mask
//     R-CNN's proposals, image sizes) reuse memory instead of growing the cache;
//   - release_cached() gives whole free segments back; when the segment allocator fails,
//     allocate() releases the cache and tries once more before returning nullptr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>

namespace tessera {

class BlockPool {
 public:
  // Gets a segment of `bytes` from the device (nullptr when it has none) / gives one back.
  using SegmentAlloc = std::function<void*(size_t bytes)>;
  using SegmentFree = std::function<void(void* ptr, size_t bytes)>;

  static constexpr size_t kRound = 512;                    // every block is a multiple of this
  static constexpr size_t kSmallRequest = size_t{1} << 20;  // <= this: the small pool
  static constexpr size_t kSmallSegment = size_t{2} << 20;
  static constexpr size_t kLargeSegment = size_t{20} << 20;  // for large requests under 10 MiB
  static constexpr size_t kSegmentRound = size_t{2} << 20;

  struct Stats {
    size_t allocated = 0;       // bytes in blocks handed out (rounded sizes)
    size_t reserved = 0;        // bytes in segments
    size_t peak_allocated = 0;  // high-water mark of `allocated`
    uint64_t segment_allocs = 0, segment_frees = 0;
    uint64_t splits = 0, merges = 0;
    size_t segments = 0;
    size_t largest_free = 0;  // the largest cached block
  };

  BlockPool(SegmentAlloc alloc, SegmentFree free) : alloc_(std::move(alloc)), free_(std::move(free)) {}
  ~BlockPool();  // the segments are not returned (see the CUDA allocator: it never destroys its pools)
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block of at least `bytes`; nullptr when the device has no room even after release_cached().
  void* allocate(size_t bytes);
  // Returns a block to the cache; false when `ptr` is not a live block of this pool.
  bool deallocate(void* ptr);
  // Gives every wholly free segment back to the device.
  void release_cached();

  static size_t round_size(size_t bytes);
  // The size of the segment a request of `rounded` bytes (not found in the cache) gets.
  static size_t segment_size(size_t rounded);
  size_t block_size(const void* ptr) const;  // 0 when not live
  Stats stats() const;
  void reset_peak() { stats_.peak_allocated = stats_.allocated; }
  // One line: allocated, reserved, peak, segments, device calls, splits and merges.
  std::string summary() const;

 private:
  struct Block {
    char* ptr;
    size_t size;
    bool small;  // which pool
    bool free = false;
    Block* prev = nullptr;  // neighbours within the segment
    Block* next = nullptr;
  };
  struct BySize {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };
  using FreeSet = std::set<Block*, BySize>;

  FreeSet& pool(bool small) { return small ? small_free_ : large_free_; }
  Block* take_cached(size_t size, bool small);
  // Absorbs free block `b` (the one right after `a` in their segment) into `a`.
  void absorb(Block* a, Block* b);
  Block* new_segment(size_t size, bool small);
  void release_free_segments();

  SegmentAlloc alloc_;
  SegmentFree free_;
  FreeSet small_free_, large_free_;
  std::unordered_map<const void*, Block*> live_;
  Stats stats_;
};

}  // namespace tessera

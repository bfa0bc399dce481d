// BlockPool (see block_pool.h): best-fit blocks carved from segments, split on allocation and
// merged with free neighbours on release.
#include "core/block_pool.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace tessera {

BlockPool::~BlockPool() {
  std::vector<Block*> all(small_free_.begin(), small_free_.end());
  all.insert(all.end(), large_free_.begin(), large_free_.end());
  for (auto& [ptr, b] : live_) all.push_back(b);
  for (Block* b : all) delete b;
}

size_t BlockPool::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  return (bytes + kRound - 1) / kRound * kRound;
}

size_t BlockPool::segment_size(size_t rounded) {
  if (rounded <= kSmallRequest) return kSmallSegment;
  if (rounded < kLargeSegment / 2) return kLargeSegment;
  return (rounded + kSegmentRound - 1) / kSegmentRound * kSegmentRound;
}

BlockPool::Block* BlockPool::take_cached(size_t size, bool small) {
  FreeSet& set = pool(small);
  Block key{nullptr, size, small};
  auto it = set.lower_bound(&key);  // the smallest free block of at least `size`
  if (it == set.end()) return nullptr;
  Block* b = *it;
  set.erase(it);
  return b;
}

BlockPool::Block* BlockPool::new_segment(size_t size, bool small) {
  void* p = alloc_(size);
  if (p == nullptr) return nullptr;
  stats_.reserved += size;
  stats_.segment_allocs += 1;
  stats_.segments += 1;
  return new Block{static_cast<char*>(p), size, small};
}

void* BlockPool::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  const bool small = size <= kSmallRequest;
  Block* b = take_cached(size, small);
  if (b == nullptr) {
    const size_t seg = segment_size(size);
    b = new_segment(seg, small);
    if (b == nullptr) {  // cached segments of other sizes may be what stands in the way
      release_free_segments();
      b = new_segment(seg, small);
    }
    if (b == nullptr) return nullptr;
  }
  const size_t rest = b->size - size;
  if (small ? rest >= kRound : rest > kSmallRequest) {
    auto* r = new Block{b->ptr + size, rest, small, true, b, b->next};
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = size;
    pool(small).insert(r);
    stats_.splits += 1;
  }
  b->free = false;
  live_[b->ptr] = b;
  stats_.allocated += b->size;
  stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
  return b->ptr;
}

bool BlockPool::deallocate(void* ptr) {
  auto it = live_.find(ptr);
  if (it == live_.end()) return false;
  Block* b = it->second;
  live_.erase(it);
  stats_.allocated -= b->size;
  FreeSet& set = pool(b->small);
  if (b->prev && b->prev->free) {  // into the free block before
    Block* p = b->prev;
    set.erase(p);
    absorb(p, b);
    b = p;
  }
  if (b->next && b->next->free) {  // the free block after, into this one
    set.erase(b->next);
    absorb(b, b->next);
  }
  b->free = true;
  set.insert(b);
  return true;
}

void BlockPool::absorb(Block* a, Block* b) {
  a->size += b->size;
  a->next = b->next;
  if (b->next) b->next->prev = a;
  delete b;
  stats_.merges += 1;
}

void BlockPool::release_free_segments() {
  for (FreeSet* set : {&small_free_, &large_free_}) {
    for (auto it = set->begin(); it != set->end();) {
      Block* b = *it;
      if (b->prev == nullptr && b->next == nullptr) {  // the whole segment is free
        free_(b->ptr, b->size);
        stats_.reserved -= b->size;
        stats_.segment_frees += 1;
        stats_.segments -= 1;
        it = set->erase(it);
        delete b;
      } else {
        ++it;
      }
    }
  }
}

void BlockPool::release_cached() { release_free_segments(); }

size_t BlockPool::block_size(const void* ptr) const {
  auto it = live_.find(ptr);
  return it == live_.end() ? 0 : it->second->size;
}

BlockPool::Stats BlockPool::stats() const {
  Stats s = stats_;
  s.largest_free = 0;
  if (!small_free_.empty()) s.largest_free = (*small_free_.rbegin())->size;
  if (!large_free_.empty()) s.largest_free = std::max(s.largest_free, (*large_free_.rbegin())->size);
  return s;
}

std::string BlockPool::summary() const {
  const Stats s = stats();
  auto mib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "allocated %.1f MiB, reserved %.1f MiB in %zu segments, peak %.1f MiB, largest free %.1f MiB, "
                "%llu device allocations / %llu frees, %llu splits / %llu merges",
                mib(s.allocated), mib(s.reserved), s.segments, mib(s.peak_allocated), mib(s.largest_free),
                static_cast<unsigned long long>(s.segment_allocs), static_cast<unsigned long long>(s.segment_frees),
                static_cast<unsigned long long>(s.splits), static_cast<unsigned long long>(s.merges));
  return buf;
}

}  // namespace tessera

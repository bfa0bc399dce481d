// BlockPool, the bookkeeping of the CUDA caching allocator, on host memory: rounding and segment
// sizes, carving, best fit, splitting, merging, releasing, out-of-memory retry, and that varying
// sizes reuse the cache instead of growing it.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>

#include "core/block_pool.h"
#include "test_helpers.h"

namespace tessera {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Segments from malloc, with an optional budget (bytes the "device" has).
struct HostSegments {
  size_t budget = SIZE_MAX, used = 0;
  std::map<void*, size_t> live;
  BlockPool pool{[this](size_t n) -> void* {
                   if (used + n > budget) return nullptr;
                   void* p = std::malloc(n);
                   live[p] = n;
                   used += n;
                   return p;
                 },
                 [this](void* p, size_t n) {
                   EXPECT_EQ(live.at(p), n) << "a segment is given back with its own size";
                   live.erase(p);
                   used -= n;
                   std::free(p);
                 }};
  ~HostSegments() {
    pool.release_cached();
    for (auto& [p, n] : live) std::free(p);
  }
};

TEST(BlockPool, RoundingAndSegmentSizes) {
  EXPECT_EQ(BlockPool::round_size(0), 512u);
  EXPECT_EQ(BlockPool::round_size(1), 512u);
  EXPECT_EQ(BlockPool::round_size(513), 1024u);
  EXPECT_EQ(BlockPool::segment_size(512), 2 * kMiB);
  EXPECT_EQ(BlockPool::segment_size(kMiB), 2 * kMiB);
  EXPECT_EQ(BlockPool::segment_size(kMiB + 512), 20 * kMiB);
  EXPECT_EQ(BlockPool::segment_size(10 * kMiB), 10 * kMiB);
  EXPECT_EQ(BlockPool::segment_size(13 * kMiB + 512), 14 * kMiB);
}

TEST(BlockPool, SmallBlocksAreCarvedFromOneSegmentAndMergeBack) {
  HostSegments h;
  std::vector<char*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(static_cast<char*>(h.pool.allocate(1000)));
  BlockPool::Stats s = h.pool.stats();
  EXPECT_EQ(s.segment_allocs, 1u);
  EXPECT_EQ(s.allocated, 100u * 1024u);
  EXPECT_EQ(s.reserved, 2 * kMiB);
  // Disjoint, inside the one segment, and writable end to end.
  std::sort(blocks.begin(), blocks.end());
  for (size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_EQ(h.pool.block_size(blocks[i]), 1024u);
    if (i > 0) {
      EXPECT_GE(blocks[i] - blocks[i - 1], 1024);
    }
    std::memset(blocks[i], static_cast<int>(i), 1000);
  }
  // Freed in a shuffled order, they merge back into one free block: the segment can go back.
  std::mt19937 rng(3);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (char* b : blocks) EXPECT_TRUE(h.pool.deallocate(b));
  s = h.pool.stats();
  EXPECT_EQ(s.allocated, 0u);
  EXPECT_EQ(s.largest_free, 2 * kMiB);
  EXPECT_GE(s.merges, 99u);
  EXPECT_FALSE(h.pool.deallocate(blocks[0])) << "a block freed twice is not ours any more";
  h.pool.release_cached();
  EXPECT_EQ(h.pool.stats().reserved, 0u);
  EXPECT_EQ(h.used, 0u);
}

TEST(BlockPool, BestFitSplitsOnlyWhenTheRemainderIsWorthKeeping) {
  HostSegments h;
  void* a = h.pool.allocate(4 * kMiB);
  void* x = h.pool.allocate(2 * kMiB);
  void* b = h.pool.allocate(2 * kMiB);
  void* y = h.pool.allocate(2 * kMiB);
  EXPECT_EQ(h.pool.stats().segment_allocs, 1u);  // all four from one 20 MiB segment
  h.pool.deallocate(a);
  h.pool.deallocate(b);
  // Free: a (4 MiB), b (2 MiB), the segment's tail (10 MiB). 1.5 MiB takes the smallest fit, b,
  // whole: a 0.5 MiB remainder is not split off in the large pool.
  void* c = h.pool.allocate(3 * kMiB / 2);
  EXPECT_EQ(c, b);
  EXPECT_EQ(h.pool.block_size(c), 2 * kMiB);
  // 3 MiB takes a (4 MiB) whole too; 1.5 MiB more goes to the tail, which is split.
  void* d = h.pool.allocate(3 * kMiB);
  EXPECT_EQ(d, a);
  const uint64_t splits = h.pool.stats().splits;
  void* e = h.pool.allocate(3 * kMiB / 2);
  EXPECT_EQ(h.pool.stats().splits, splits + 1);
  EXPECT_EQ(h.pool.block_size(e), 3 * kMiB / 2);
  for (void* p : {c, d, e, x, y}) h.pool.deallocate(p);
  EXPECT_EQ(h.pool.stats().largest_free, 20 * kMiB);
}

TEST(BlockPool, VaryingSizesReuseTheCacheInsteadOfGrowingIt) {
  // Mask R-CNN's pattern: a few live blocks of sizes that change every step.
  HostSegments h;
  std::mt19937 rng(5);
  std::uniform_int_distribution<size_t> size(kMiB + 1, 9 * kMiB);
  for (int step = 0; step < 300; ++step) {
    void* p[3];
    for (void*& q : p) q = h.pool.allocate(size(rng));
    for (void* q : p) h.pool.deallocate(q);
  }
  const BlockPool::Stats s = h.pool.stats();
  // Three blocks of at most 9 MiB each fit in two 20 MiB segments.
  EXPECT_LE(s.segment_allocs, 2u) << h.pool.summary();
  EXPECT_EQ(s.allocated, 0u);
  EXPECT_GT(s.splits, 0u);
}

TEST(BlockPool, OutOfRoomReleasesTheCacheAndTriesOnce) {
  HostSegments h;
  h.budget = 23 * kMiB;
  void* small = h.pool.allocate(1000);  // a 2 MiB segment
  h.pool.deallocate(small);             // cached
  // 22 MiB needs a 22 MiB segment: only after the cached one goes back.
  void* big = h.pool.allocate(22 * kMiB);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(h.pool.stats().segment_frees, 1u);
  EXPECT_EQ(h.pool.allocate(4 * kMiB), nullptr) << "no room and nothing cached: the caller reports it";
  h.pool.deallocate(big);
}

}  // namespace
}  // namespace tessera

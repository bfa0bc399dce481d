// Which samples a process visits in an epoch: torch.utils.data.DistributedSampler's rule, used by
// DataLoader (LoaderOptions::replicas / rank) and so by every rank of a data-parallel run.
#pragma once

#include <cstdint>
#include <vector>

namespace tessera {

// The indices of [0, n) that replica `rank` of `replicas` visits in `epoch`: a permutation drawn
// from (seed, epoch) when shuffling (the same on every rank: the seed is shared), or 0..n-1; padded
// by repeating its start to a multiple of `replicas`; then every replicas-th index from `rank`.
// The shards are disjoint but for the padding, all ceil(n / replicas) long, and together cover
// every index. replicas == 1 is the plain (shuffled) order.
std::vector<int64_t> epoch_indices(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int replicas = 1, int rank = 0);

}  // namespace tessera

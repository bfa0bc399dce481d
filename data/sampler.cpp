// epoch_indices (data/sampler.h).
#include "data/sampler.h"

#include <numeric>
#include <utility>

#include "core/error.h"
#include "data/rng.h"

namespace tessera {

std::vector<int64_t> epoch_indices(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int replicas, int rank) {
  TS_CHECK(n >= 0, "epoch_indices: negative sample count ", n);
  TS_CHECK(replicas >= 1 && rank >= 0 && rank < replicas, "epoch_indices: rank ", rank, " is not one of ", replicas, " replicas");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (shuffle) {  // Fisher-Yates from (seed, epoch)
    DataRng rng(seed, static_cast<uint64_t>(epoch), 0x5eedull);
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng.randint(0, i + 1))]);
  }
  if (replicas == 1 || n == 0) return order;
  const int64_t per = (n + replicas - 1) / replicas, total = per * replicas;
  for (int64_t i = n; i < total; ++i) order.push_back(order[static_cast<size_t>(i - n)]);  // pad from the start
  std::vector<int64_t> shard;
  shard.reserve(static_cast<size_t>(per));
  for (int64_t i = rank; i < total; i += replicas) shard.push_back(order[static_cast<size_t>(i)]);
  return shard;
}

}  // namespace tessera

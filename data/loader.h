// DataLoader: shuffling from a seed, batching, and background prefetch on worker threads so that
// the model does not wait for data in steady state. Each sample's transform gets its own DataRng
// seeded from (seed, epoch, index): the batches are the same whatever the number of workers and
// whatever order they finish in. A bad sample stops the epoch with an Error naming the sample —
// or, with skip_bad, is reported on stderr and left out of its batch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/rng.h"

namespace tessera {

struct LoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = true;
  uint64_t seed = 0;
  int workers = 2;        // 0: load on the calling thread
  int prefetch = 2;       // batches ready ahead, per worker
  bool drop_last = false;
  bool skip_bad = false;
  // Data parallelism: this process is replica `rank` of `replicas` and loads only its shard of
  // each epoch (data/sampler.h: disjoint, equal-length shards of one shared shuffle).
  int replicas = 1;
  int rank = 0;
};

using SampleTransform = std::function<Sample(Sample, DataRng&)>;

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options, SampleTransform transform = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts an epoch: the order is a permutation drawn from (seed, epoch) (this replica's shard of it).
  // `first_batch` > 0 starts part-way (a resumed run continues where its checkpoint stopped).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the epoch, or nullopt when it is over.
  std::optional<std::vector<Sample>> next();
  int64_t batches_per_epoch() const;
  int64_t skipped() const { return skipped_; }

 private:
  std::vector<Sample> load_batch(int64_t b);
  void worker_loop();
  void stop_workers();

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions opts_;
  SampleTransform transform_;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;
  int64_t next_to_hand_ = 0, next_to_load_ = 0;
  std::atomic<int64_t> skipped_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, std::vector<Sample>> ready_;
  std::map<int64_t, std::exception_ptr> failed_;
  bool stopping_ = false;
  bool started_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tessera

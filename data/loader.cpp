// DataLoader: an epoch is a list of batches; workers take batch numbers in order and park the
// results; next() hands them out in order.
#include "data/loader.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "core/parallel.h"
#include "data/sampler.h"

namespace tessera {

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options, SampleTransform transform)
    : dataset_(std::move(dataset)), opts_(options), transform_(std::move(transform)) {
  TS_CHECK(dataset_ != nullptr && dataset_->size() > 0, "DataLoader: the dataset is empty");
  TS_CHECK(opts_.batch_size >= 1 && opts_.workers >= 0 && opts_.prefetch >= 1, "DataLoader: batch_size and prefetch ",
           "must be at least 1, workers at least 0");
  TS_CHECK(opts_.replicas >= 1 && opts_.rank >= 0 && opts_.rank < opts_.replicas, "DataLoader: rank ", opts_.rank,
           " is not one of ", opts_.replicas, " replicas");
  start_epoch(0);
}

DataLoader::~DataLoader() { stop_workers(); }

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  stopping_ = false;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t all = dataset_->size();
  const int64_t n = opts_.replicas > 1 && all > 0 ? (all + opts_.replicas - 1) / opts_.replicas : all;
  return opts_.drop_last ? n / opts_.batch_size : (n + opts_.batch_size - 1) / opts_.batch_size;
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  TS_CHECK(first_batch >= 0 && first_batch <= batches_per_epoch(), "DataLoader: first batch ", first_batch,
           " of an epoch of ", batches_per_epoch());
  stop_workers();
  epoch_ = epoch;
  order_ = epoch_indices(dataset_->size(), opts_.shuffle, opts_.seed, epoch, opts_.replicas, opts_.rank);
  next_to_hand_ = next_to_load_ = first_batch;
  ready_.clear();
  failed_.clear();
  started_ = false;  // workers start with the first next(): an epoch nobody reads loads nothing
}

std::vector<Sample> DataLoader::load_batch(int64_t b) {
  std::vector<Sample> batch;
  const int64_t begin = b * opts_.batch_size;
  const int64_t end = std::min<int64_t>(begin + opts_.batch_size, static_cast<int64_t>(order_.size()));
  for (int64_t i = begin; i < end; ++i) {
    const int64_t index = order_[static_cast<size_t>(i)];
    try {
      Sample s = dataset_->get(index);
      if (transform_) {
        DataRng rng(opts_.seed, static_cast<uint64_t>(epoch_) * 0x100000000ull + static_cast<uint64_t>(index), 0xa06ull);
        s = transform_(std::move(s), rng);
      }
      batch.push_back(std::move(s));
    } catch (const Error& e) {
      if (!opts_.skip_bad) TS_ERROR("DataLoader: ", dataset_->describe(index), " failed: ", e.what());
      std::fprintf(stderr, "DataLoader: skipping %s: %s\n", dataset_->describe(index).c_str(), e.what());
      ++skipped_;
    }
  }
  return batch;
}

void DataLoader::worker_loop() {
  ScopedThreads single(1);  // workers run their tensor ops single-threaded: the workers are the parallelism
  const int64_t ahead = static_cast<int64_t>(opts_.workers) * opts_.prefetch;
  while (true) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || (next_to_load_ < batches_per_epoch() && next_to_load_ < next_to_hand_ + ahead); });
      if (stopping_) return;
      b = next_to_load_++;
    }
    std::vector<Sample> batch;
    std::exception_ptr error;
    try {
      batch = load_batch(b);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error) failed_[b] = error;
      else ready_[b] = std::move(batch);
    }
    cv_.notify_all();
  }
}

std::optional<std::vector<Sample>> DataLoader::next() {
  if (!started_) {
    started_ = true;
    for (int w = 0; w < opts_.workers; ++w) threads_.emplace_back([this] { worker_loop(); });
  }
  while (true) {
    if (next_to_hand_ >= batches_per_epoch()) return std::nullopt;
    const int64_t b = next_to_hand_;
    std::vector<Sample> batch;
    if (opts_.workers == 0) {
      batch = load_batch(b);
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return ready_.count(b) || failed_.count(b); });
      if (failed_.count(b)) {
        std::exception_ptr e = failed_[b];
        failed_.erase(b);
        next_to_hand_ = batches_per_epoch();  // the epoch ends here
        lock.unlock();
        cv_.notify_all();
        std::rethrow_exception(e);
      }
      batch = std::move(ready_[b]);
      ready_.erase(b);
    }
    ++next_to_hand_;
    cv_.notify_all();
    if (!batch.empty()) return batch;  // an all-bad batch (skip_bad) is passed over
  }
}

}  // namespace tessera

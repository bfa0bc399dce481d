// DistributedDataParallel: one model replica per rank, gradients averaged across ranks during
// backward, as torch.nn.parallel.DistributedDataParallel does it.
//   - At construction every rank's model is checked against rank 0's (the same parameter and
//     buffer names, shapes and dtypes; else an Error naming the rank that differs), then rank 0's
//     values are broadcast, so all replicas start equal.
//   - Trainable parameters are grouped into buckets of about `bucket_bytes`, filled in reverse
//     registration order (roughly the order backward produces their gradients). A hook on each
//     parameter (autograd/node.h: register_post_accumulate_grad_hook) marks its gradient final;
//     when a bucket is complete, and every bucket before it has been started, its sum all-reduce
//     starts (MPI_Iallreduce) while the rest of the backward runs. Buckets start in index order on
//     every rank, so the reduction order, and the result, is the same on every run.
//   - At the end of the backward (an engine callback) the remaining buckets start, parameters that
//     got no gradient on this rank (Mask R-CNN's mask head on images without masks) take part as
//     zeros instead of leaving the others waiting, and every gradient becomes the average.
// Call finish() after backward in a training loop as well: it is free when the callback has run,
// and it keeps the ranks in step when a rank's backward reached no parameter at all.
#pragma once

#include <cstddef>
#include <vector>

#include "distributed/dist.h"
#include "layers/module.h"

namespace tessera::dist {

struct DDPOptions {
  size_t bucket_bytes = size_t{25} << 20;  // PyTorch's default bucket_cap_mb
};

class DistributedDataParallel {
 public:
  explicit DistributedDataParallel(Module& module, DDPOptions options = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  Module& module() { return module_; }
  // Completes this step's gradient averaging (see above); idempotent within a step.
  void finish();

  // The last step: seconds spent in finish() waiting for all-reduces to complete (communication
  // that backward did not hide), and the buckets started before backward ended.
  double last_wait_seconds() const { return last_wait_s_; }
  size_t last_buckets_started_early() const { return last_early_; }
  size_t num_buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    Tensor flat;                 // the bucket's gradients, one contiguous buffer
    size_t ready = 0;
    Work work;
  };
  void on_gradient(size_t param);
  void start_ready_buckets();
  void start(Bucket& b);

  Module& module_;
  std::vector<Tensor> params_;         // trainable parameters, in bucket order
  std::vector<size_t> bucket_of_;      // param -> bucket
  std::vector<bool> got_gradient_;     // this step
  std::vector<Bucket> buckets_;
  size_t next_bucket_ = 0;             // the next bucket to start
  bool in_step_ = false;               // hooks have fired since the last finish
  bool finished_by_callback_ = false;  // the callback finished this step; finish() only consumes it
  double last_wait_s_ = 0;
  size_t last_early_ = 0;
};

}  // namespace tessera::dist

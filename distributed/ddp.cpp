// DistributedDataParallel (distributed/ddp.h): configuration check, broadcast, buckets, hooks.
#include "distributed/ddp.h"

#include <algorithm>
#include <chrono>
#include <functional>

#include "autograd/node.h"

namespace tessera::dist {

namespace {

// A fingerprint of a model's structure: names, shapes and dtypes of its parameters and buffers.
int64_t fingerprint(const Module& m) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  };
  for (const auto& [name, t] : m.state_dict()) {
    mix(name);
    mix(shape_str(t.shape()));
    mix(dtype_name(t.dtype()));
  }
  return static_cast<int64_t>(h >> 1);
}

}  // namespace

DistributedDataParallel::DistributedDataParallel(Module& module, DDPOptions opts) : module_(module) {
  TS_CHECK(is_initialized(), "DistributedDataParallel: call tessera::dist::init() first");
  TS_CHECK(opts.bucket_bytes > 0, "DistributedDataParallel: bucket_bytes must be positive");
  // Every rank must hold the same model: compare fingerprints before any collective on tensors.
  const Tensor mine = from_vector<int64_t>({fingerprint(module), module.num_parameters()});
  const std::vector<int64_t> all = all_gather(mine).to_vector<int64_t>();
  for (int r = 1; r < world_size(); ++r)
    TS_CHECK(all[static_cast<size_t>(2 * r)] == all[0] && all[static_cast<size_t>(2 * r + 1)] == all[1],
             "DistributedDataParallel: rank ", r, "'s model differs from rank 0's (", all[static_cast<size_t>(2 * r + 1)],
             " parameters against ", all[1], ", or other names, shapes or dtypes): every rank must build the same model");
  // Rank 0's values everywhere, in state_dict order (the same on every rank).
  // (Host tensors go over MPI, GPU tensors over NCCL: dist::broadcast picks by device.)
  const NamedTensors state = module.state_dict();
  const Device device = state.empty() ? Device("cpu") : state.front().second.device();
  for (auto& [name, t] : state) {
    TS_CHECK(t.device() == device, "DistributedDataParallel: ", name, " is on ", t.device(), " and ", state.front().first,
             " on ", device, ": a replica lives on one device");
    Tensor value = t.detach();
    broadcast(value, 0);
  }
  // Trainable parameters in reverse registration order, packed into buckets.
  const NamedTensors named = module.named_parameters();
  for (auto it = named.rbegin(); it != named.rend(); ++it)
    if (it->second.requires_grad()) params_.push_back(it->second);
  TS_CHECK(!params_.empty(), "DistributedDataParallel: the model has no trainable parameter");
  const DType dtype = params_[0].dtype();
  size_t bytes = 0;
  for (size_t p = 0; p < params_.size(); ++p) {
    TS_CHECK(params_[p].dtype() == dtype, "DistributedDataParallel: parameters of several dtypes (",
             dtype_name(dtype), " and ", dtype_name(params_[p].dtype()), ") are not supported");
    const size_t nbytes = params_[p].nbytes();
    if (buckets_.empty() || (bytes + nbytes > opts.bucket_bytes && !buckets_.back().params.empty())) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().params.push_back(p);
    bucket_of_.push_back(buckets_.size() - 1);
    bytes += nbytes;
  }
  for (Bucket& b : buckets_) {
    int64_t n = 0;
    for (size_t p : b.params) n += params_[p].numel();
    b.flat = zeros({n}, options(dtype, device));
  }
  got_gradient_.assign(params_.size(), false);
  for (size_t p = 0; p < params_.size(); ++p)
    register_post_accumulate_grad_hook(params_[p], [this, p](const Tensor&) { on_gradient(p); });
}

DistributedDataParallel::~DistributedDataParallel() {
  for (const Tensor& p : params_) clear_post_accumulate_grad_hooks(p);
}

void DistributedDataParallel::on_gradient(size_t p) {
  if (!in_step_) {
    in_step_ = true;
    finished_by_callback_ = false;
    last_early_ = 0;
    queue_backward_callback([this] {
      finish();
      finished_by_callback_ = true;
    });
  }
  if (got_gradient_[p]) return;  // a second backward in one step: its gradient is in grad already
  got_gradient_[p] = true;
  Bucket& b = buckets_[bucket_of_[p]];
  if (++b.ready == b.params.size()) start_ready_buckets();
  for (size_t k = 0; k < next_bucket_; ++k) buckets_[k].work.test();  // let MPI move what is in flight
}

void DistributedDataParallel::start_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].ready == buckets_[next_bucket_].params.size()) {
    start(buckets_[next_bucket_]);
    ++next_bucket_;
  }
}

void DistributedDataParallel::start(Bucket& b) {
  NoGradGuard no_grad;
  int64_t off = 0;
  for (size_t p : b.params) {
    const Tensor& param = params_[p];
    Tensor slice = b.flat.narrow(0, off, param.numel());
    if (got_gradient_[p] && param.grad().defined()) slice.copy_(param.grad().reshape({-1}));
    else slice.zero_();  // unused on this rank this step: zeros, so the others are not kept waiting
    off += param.numel();
  }
  b.work = all_reduce_sum_async(b.flat);
}

void DistributedDataParallel::finish() {
  if (finished_by_callback_) {  // the end-of-backward callback has done this step's work
    finished_by_callback_ = false;
    return;
  }
  NoGradGuard no_grad;
  last_early_ = next_bucket_;
  while (next_bucket_ < buckets_.size()) start(buckets_[next_bucket_++]);
  const auto t0 = std::chrono::steady_clock::now();
  for (Bucket& b : buckets_) b.work.wait();
  last_wait_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double scale = 1.0 / static_cast<double>(world_size());
  for (Bucket& b : buckets_) {
    const Tensor avg = mul(b.flat, scale);  // the sums become averages once per bucket
    int64_t off = 0;
    for (size_t p : b.params) {
      Tensor& param = params_[p];
      const Tensor slice = avg.narrow(0, off, param.numel()).reshape(param.shape());
      if (param.grad().defined()) param.grad().copy_(slice);
      else param.set_grad(slice.contiguous());
      off += param.numel();
    }
    b.ready = 0;
  }
  std::fill(got_gradient_.begin(), got_gradient_.end(), false);
  next_bucket_ = 0;
  in_step_ = false;
}

}  // namespace tessera::dist

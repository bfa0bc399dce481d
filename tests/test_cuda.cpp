// CUDA runtime pieces: caching allocator, copies between devices, streams/handles. Each test skips
// without a usable device (and fails instead under TESSERA_REQUIRE_CUDA=1).
#include <functional>

#include "distributed/ddp.h"
#include "distributed/dist.h"
#include "test_helpers.h"

namespace tessera {
namespace {

TEST(CudaAllocator, SteadyStateReusesBlocksWithoutCudaMalloc) {
  TS_SKIP_WITHOUT_CUDA();
  cuda::synchronize(0);
  { Tensor warm = empty({1 << 20}, options(kFloat32, cuda_device())); }
  const cuda::MemoryStats before = cuda::memory_stats(0);
  for (int i = 0; i < 50; ++i) {
    Tensor t = empty({1 << 20}, options(kFloat32, cuda_device()));
    Tensor u = add(t, 1.0);  // same sizes every iteration, as in a training loop
  }
  const cuda::MemoryStats after = cuda::memory_stats(0);
  // The second live buffer is carved from the first one's 20 MiB segment, or gets one of its own.
  EXPECT_LE(after.device_allocs, before.device_allocs + 1) << cuda::memory_summary(0);
  EXPECT_EQ(after.allocated, before.allocated);
}

TEST(CudaAllocator, StatsPeakAndEmptyCache) {
  TS_SKIP_WITHOUT_CUDA();
  cuda::reset_peak_memory_stats(0);
  const size_t base = cuda::memory_stats(0).allocated;
  {
    Tensor t = empty({1 << 22}, options(kFloat32, cuda_device()));  // 16 MiB
    EXPECT_GE(cuda::memory_stats(0).allocated, base + (size_t{16} << 20));
  }
  cuda::MemoryStats s = cuda::memory_stats(0);
  EXPECT_EQ(s.allocated, base);
  EXPECT_GE(s.peak_allocated, base + (size_t{16} << 20));
  EXPECT_GE(s.reserved, size_t{16} << 20);
  cuda::empty_cache();
  EXPECT_LT(cuda::memory_stats(0).reserved, s.reserved);
}

TEST(CudaAllocator, OutOfMemoryIsAClearError) {
  TS_SKIP_WITHOUT_CUDA();
  try {
    Tensor t = empty({int64_t{1} << 46}, options(kUInt8, cuda_device()));  // 64 TiB
    FAIL() << "expected out of memory";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
  }
  // The allocator still works afterwards.
  EXPECT_EQ(ones({4}, options(kFloat32, cuda_device())).cpu().to_vector<float>(), std::vector<float>(4, 1.f));
}

TEST(CudaCopy, BetweenDevicesThroughAnyLayout) {
  TS_SKIP_WITHOUT_CUDA();
  Tensor x = randn({5, 7});
  Tensor g = x.to(cuda_device());
  EXPECT_TRUE(g.is_cuda());
  EXPECT_TRUE(test::equal(g.cpu(), x));
  EXPECT_TRUE(test::equal(x.t().to(cuda_device()).cpu(), x.t()));  // strided source
  Tensor dst = zeros({7, 5}, options(kFloat64, cuda_device()));
  dst.t().copy_(x);  // strided destination, cast, host to device
  EXPECT_TRUE(test::equal(dst.cpu(), x.t().to(kFloat64)));
  Tensor host_dst = zeros({7, 5});
  host_dst.t().copy_(g);  // device to a strided host view
  EXPECT_TRUE(test::equal(host_dst, x.t()));
  EXPECT_EQ(arange(5, options(kInt64, cuda_device())).cpu().to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(linspace(0, 1, 3, options(kFloat32, cuda_device())).cpu().to_vector<float>(), (std::vector<float>{0, 0.5f, 1}));
  EXPECT_EQ(full({2}, 3.0, options(kInt32, cuda_device())).cpu().to_vector<int32_t>(), (std::vector<int32_t>{3, 3}));
}

// Host <-> device copies go through pinned staging slots of 8 MiB: a copy of several slots is
// exact both ways, and a host-to-device copy returns once the bytes are staged, so the host buffer
// may be changed at once without changing what the device received.
TEST(CudaCopy, LargeCopiesAndAHostBufferReusedAtOnce) {
  TS_SKIP_WITHOUT_CUDA();
  Tensor host = randn({5'000'000});  // 20 MB: three slots
  Tensor dev = host.to(cuda_device());
  EXPECT_TRUE(test::equal(dev.cpu(), host));
  Tensor staged = full({3'000'000}, 1.0);
  Tensor received = staged.to(cuda_device());
  staged.fill_(2.0);
  Tensor more = staged.to(cuda_device());  // the next copy reuses the slots
  EXPECT_EQ(amin(received).item<float>(), 1.0f);
  EXPECT_EQ(amax(received).item<float>(), 1.0f);
  EXPECT_EQ(amin(more).item<float>(), 2.0f);
}

// CUDA index kernels check their own indices instead of the host checking first (which would wait
// for the device): a bad index is raised at the next synchronisation (here: the copy to the host),
// naming the op; the device works normally afterwards.
TEST(CudaIndex, OutOfRangeIsRaisedAtTheNextSynchronisation) {
  TS_SKIP_WITHOUT_CUDA();
  const Tensor x = randn({4, 5});
  const Tensor gx = x.to(cuda_device());
  const Tensor bad = from_vector<int64_t>({0, 7}).to(cuda_device());
  const std::pair<const char*, std::function<Tensor()>> ops[] = {
      {"index_select", [&] { return index_select(gx, 1, bad); }},
      {"gather", [&] { return gather(gx, 1, full({4, 2}, 9.0, options(kInt64, cuda_device()))); }},
      {"scatter_add", [&] { return scatter_add(gx, 0, full({2, 5}, 4.0, options(kInt64, cuda_device())), ones({2, 5}).cuda()); }},
      {"index_add", [&] { return index_add(gx, 0, from_vector<int64_t>({4}).cuda(), ones({1, 5}).cuda()); }}};
  for (const auto& [name, op] : ops) {
    try {
      op().cpu();
      ADD_FAILURE() << name << ": expected an out-of-range error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string(name) + ": index out of range"), std::string::npos) << msg;
    }
    EXPECT_NO_THROW(cuda::synchronize(0)) << "the error is raised once";
  }
  const Tensor good = from_vector<int64_t>({4, 0, 2});
  EXPECT_TRUE(test::equal(index_select(gx, 1, good.cuda()).cpu(), index_select(x, 1, good)));
}

TEST(CudaDevice, BadDeviceIndexIsAnError) {
  TS_SKIP_WITHOUT_CUDA();
  EXPECT_THROW(zeros({2}, Device("cuda:" + std::to_string(cuda::device_count()))), Error);
}

TEST(CudaAutograd, TrainingStepOnTheDeviceMatchesTheCpu) {
  TS_SKIP_WITHOUT_CUDA();
  Tensor w_cpu = randn({8, 4}).requires_grad_(), x_cpu = randn({16, 8});
  Tensor w_gpu = w_cpu.detach().cuda().requires_grad_(), x_gpu = x_cpu.cuda();
  auto loss = [](const Tensor& x, const Tensor& w) { return mean(log_softmax(relu(matmul(x, w)), 1)); };
  loss(x_cpu, w_cpu).backward();
  loss(x_gpu, w_gpu).backward();
  EXPECT_TRUE(test::close(w_gpu.grad().cpu(), w_cpu.grad(), 1e-5, 1e-4));
}

// tessera::dist on GPU tensors goes through NCCL (loaded on first use). One process here is a world
// of one, so every collective must give back its input unchanged: this checks the plumbing (the
// library loads, the communicator is made, dtypes, in-place, the side stream and its events, DDP's
// buckets on the device); the sums across ranks are the CPU (MPI) tests' and the multi-GPU run's.
TEST(DistCuda, CollectivesAndDdpOnOneRankThroughNccl) {
  TS_SKIP_WITHOUT_CUDA();
  dist::init();
  ASSERT_EQ(dist::world_size(), 1) << "run this test outside mpirun";
  const Tensor x = randn({1000}), n = randint(-9, 9, {37}, kInt64);
  for (dist::ReduceOp op : {dist::ReduceOp::Sum, dist::ReduceOp::Avg, dist::ReduceOp::Max}) {
    Tensor g = x.cuda();
    dist::all_reduce(g, op);
    EXPECT_TRUE(test::equal(g.cpu(), x));
  }
  Tensor gi = n.cuda();
  dist::all_reduce(gi);
  EXPECT_TRUE(test::equal(gi.cpu(), n));
  Tensor b = x.to(kFloat64).cuda();
  dist::broadcast(b, 0);
  EXPECT_TRUE(test::equal(b.cpu(), x.to(kFloat64)));
  const Tensor gathered = dist::all_gather(n.cuda());
  EXPECT_TRUE(gathered.is_cuda());
  EXPECT_TRUE(test::equal(gathered.cpu(), n.unsqueeze(0)));
  Tensor a = x.cuda();
  dist::Work w = dist::all_reduce_sum_async(a);
  w.wait();  // the tensor's stream waits; the copy to the host below is ordered after it
  EXPECT_TRUE(test::equal(a.cpu(), x));
  Tensor strided = randn({4, 6}).cuda().t();
  EXPECT_THROW(dist::all_reduce(strided), Error);  // NCCL needs contiguous memory

  // DDP on the device: the averaged gradients of a world of one are the gradients.
  manual_seed(5);
  Linear plain(16, 8), wrapped(16, 8);
  for (size_t k = 0; k < plain.parameters().size(); ++k) wrapped.parameters()[k].detach().copy_(plain.parameters()[k].detach());
  plain.to(Device("cuda"));
  wrapped.to(Device("cuda"));
  dist::DistributedDataParallel ddp(wrapped, dist::DDPOptions{256});  // several buckets
  const Tensor in = randn({4, 16}).cuda();
  sum(mul(plain.forward(in), plain.forward(in))).backward();
  sum(mul(wrapped.forward(in), wrapped.forward(in))).backward();
  for (size_t k = 0; k < plain.parameters().size(); ++k)
    EXPECT_TRUE(test::equal(wrapped.parameters()[k].grad().cpu(), plain.parameters()[k].grad().cpu())) << "parameter " << k;
  dist::finalize();
}

}  // namespace
}  // namespace tessera

// core/: dtypes, devices, views, layout/dtype conversion, factories, errors.
#include <set>

#include "data/sampler.h"
#include "kernels/math.h"
#include "models/unet.h"
#include "test_helpers.h"

namespace tessera {
namespace {

using test::close;
using test::equal;
using test::host;

TEST(DType, SizesNamesPromotion) {
  EXPECT_EQ(element_size(kFloat32), 4u);
  EXPECT_EQ(element_size(kFloat64), 8u);
  EXPECT_EQ(element_size(kInt64), 8u);
  EXPECT_EQ(element_size(kBool), 1u);
  EXPECT_STREQ(dtype_name(kUInt8), "uint8");
  EXPECT_EQ(promote_types(kInt32, kFloat32), kFloat32);
  EXPECT_EQ(promote_types(kBool, kUInt8), kUInt8);
  EXPECT_EQ(promote_types(kInt64, kInt32), kInt64);
  EXPECT_EQ(promote_types(kFloat64, kFloat32), kFloat64);
}

TEST(DType, ResultTypeFollowsPyTorch) {
  Tensor i32 = zeros({3}, kInt32), f32 = zeros({3}, kFloat32), f64_0d = scalar_tensor(1, kFloat64);
  Tensor i64_0d = scalar_tensor(1, kInt64), b = zeros({3}, kBool);
  EXPECT_EQ(result_type(i32, f32), kFloat32);
  EXPECT_EQ(result_type(f32, f64_0d), kFloat32);  // a 0-dim tensor of the same category does not promote
  EXPECT_EQ(result_type(i32, f64_0d), kFloat64);  // ...but one of a higher category does
  EXPECT_EQ(result_type(i32, i64_0d), kInt32);
  EXPECT_EQ(result_type(b, i64_0d), kInt64);
  EXPECT_EQ(result_type(i32, 2.0), kInt32);
  EXPECT_EQ(result_type(i32, 2.5), kFloat32);
  EXPECT_EQ(result_type(b, 3.0), kInt64);
}

TEST(Device, CpuAndCudaFactories) {
  static_assert(Device::cpu().type == DeviceType::CPU && Device::cuda(2).index == 2);
  EXPECT_EQ(Device::cpu(), Device("cpu"));
  EXPECT_EQ(Device::cuda(), Device("cuda:0"));
  EXPECT_EQ(Device::cuda(1), Device("cuda:1"));
  EXPECT_NE(Device::cuda(1), Device::cuda(0));
}

TEST(Device, ParsesAndRejects) {
  EXPECT_TRUE(Device("cpu").is_cpu());
  EXPECT_EQ(Device("cuda").index, 0);
  EXPECT_EQ(Device("cuda:3").index, 3);
  EXPECT_EQ(Device("cuda:1").str(), "cuda:1");
  EXPECT_THROW(Device("gpu"), Error);
  EXPECT_THROW(Device("cuda:"), Error);
  EXPECT_THROW(Device("cuda:x"), Error);
}

TEST(Tensor, FactoriesHoldTheirValues) {
  EXPECT_EQ(zeros({2, 3}).to_vector<float>(), std::vector<float>(6, 0.f));
  EXPECT_EQ(ones({4}, kInt64).to_vector<int64_t>(), std::vector<int64_t>(4, 1));
  EXPECT_EQ(full({2}, 2.5, kFloat64).to_vector<double>(), (std::vector<double>{2.5, 2.5}));
  EXPECT_EQ(arange(5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25, kFloat32).to_vector<float>(), (std::vector<float>{1.f, 1.25f, 1.5f, 1.75f}));
  EXPECT_EQ(arange(5.0, 0.0, -2.0).to_vector<int64_t>(), (std::vector<int64_t>{5, 3, 1}));
  // linspace: both ends exact, as PyTorch's two-sided formula gives.
  std::vector<double> ls = linspace(-1.0, 1.0, 5, kFloat64).to_vector<double>();
  EXPECT_EQ(ls, (std::vector<double>{-1.0, -0.5, 0.0, 0.5, 1.0}));
  std::vector<float> ls2 = linspace(0.0, 1.0, 7).to_vector<float>();
  EXPECT_EQ(ls2.front(), 0.f);
  EXPECT_EQ(ls2.back(), 1.f);
  for (int i = 0; i < 7; ++i) EXPECT_NEAR(ls2[i], i / 6.0, 1e-7);
  Tensor v = from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(v.shape(), (Shape{2, 3}));
  EXPECT_EQ(v.dtype(), kInt32);
  EXPECT_EQ(scalar_tensor(7.0).item<float>(), 7.f);
  EXPECT_EQ(scalar_tensor(7.0).dim(), 0);
}

// Errors name where they were raised relative to the repository, on every floor (not the build
// machine's absolute path).
TEST(Errors, LocationsAreRelativeToTheSourceRoot) {
  auto where = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string models = where([] { UNet(UNetOptions{}).output_size(571); });
  EXPECT_NE(models.find("(at models/unet.cpp:"), std::string::npos) << models;
  const std::string data = where([] { epoch_indices(-1, false, 0, 0); });
  EXPECT_NE(data.find("(at data/sampler.cpp:"), std::string::npos) << data;
  const std::string core = where([] { zeros({2, -1}); });
  EXPECT_NE(core.find("(at core/"), std::string::npos) << core;
}

TEST(Tensor, FactoriesRejectBadArguments) {
  EXPECT_THROW(zeros({2, -1}), Error);
  EXPECT_THROW(arange(0.0, 1.0, 0.0), Error);
  EXPECT_THROW(arange(0.0, 1.0, -1.0), Error);
  EXPECT_THROW(linspace(0, 1, -2), Error);
  EXPECT_THROW(from_vector<float>({1.f, 2.f}, {3}), Error);
  // A CUDA device that is not there: no CUDA at all, or one index past the last device.
  const int missing_cuda = cuda::is_available() ? cuda::device_count() : 0;
  EXPECT_THROW(from_vector<float>({1.f}, {}, Device("cuda:" + std::to_string(missing_cuda))), Error);
  EXPECT_THROW(Tensor().numel(), Error);
  EXPECT_THROW(zeros({2}).item<float>(), Error);
  EXPECT_THROW(zeros({2}, kInt64).requires_grad_(), Error);
}

TEST(Tensor, ViewsShareStorageAndIndexCorrectly) {
  Tensor x = arange(24, kFloat32).reshape({2, 3, 4});
  EXPECT_TRUE(x.is_contiguous());
  Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.storage(), x.storage());
  // p[k, i, j] == x[i, j, k] == i*12 + j*4 + k
  test::Host hp = host(p);
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(hp.at({k, i, j}), i * 12 + j * 4 + k);
  Tensor t = x.transpose(0, 2);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(host(t).at({3, 2, 1}), 1 * 12 + 2 * 4 + 3);
  Tensor n = x.narrow(2, 1, 2);
  EXPECT_EQ(n.to_vector<float>(), (std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}));
  Tensor s = x.slice(2, 0, 4, 3);  // columns 0 and 3
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{0, 3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 23}));
  EXPECT_EQ(x.slice(1, -2, 100).shape(), (Shape{2, 2, 4}));  // Python slice clamping
  Tensor sel = x.select(1, -1);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_EQ(sel.to_vector<float>(), (std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23}));
  Tensor e = arange(3, kFloat32).reshape({3, 1}).expand({3, 4});
  EXPECT_EQ(e.stride(1), 0);
  EXPECT_EQ(e.to_vector<float>(), (std::vector<float>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}));
  EXPECT_EQ(e.expand({2, 3, -1}).shape(), (Shape{2, 3, 4}));
  Tensor u = x.unsqueeze(1);
  EXPECT_EQ(u.shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(u.squeeze(1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(ones({1, 3, 1}).squeeze().shape(), (Shape{3}));
  EXPECT_EQ(x.flatten().shape(), (Shape{24}));
  EXPECT_EQ(x.flatten(1).shape(), (Shape{2, 12}));
  EXPECT_EQ(x.view({4, -1}).shape(), (Shape{4, 6}));
}

TEST(Tensor, ReshapeCopiesOnlyWhenItMust) {
  Tensor x = arange(12, kFloat32).reshape({3, 4});
  Tensor t = x.t();
  EXPECT_THROW(t.view({12}), Error);  // not viewable
  Tensor r = t.reshape({12});         // copies
  EXPECT_NE(r.storage(), x.storage());
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  Tensor v = x.reshape({2, 2, 3});  // views
  EXPECT_EQ(v.storage(), x.storage());
  // A sliced tensor whose rows are still contiguous chunks can be viewed.
  Tensor rows = arange(24, kFloat32).reshape({6, 4}).slice(0, 0, 6, 2);  // rows 0, 2, 4
  Tensor vv = rows.view({3, 2, 2});
  EXPECT_EQ(vv.storage(), rows.storage());
  EXPECT_EQ(vv.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19}));
}

TEST(Tensor, ViewErrorsNameTheProblem) {
  Tensor x = zeros({2, 3});
  EXPECT_THROW(x.view({4}), Error);
  EXPECT_THROW(x.reshape({-1, -1}), Error);
  EXPECT_THROW(x.permute({0, 0}), Error);
  EXPECT_THROW(x.permute({0}), Error);
  EXPECT_THROW(x.narrow(1, 2, 2), Error);
  EXPECT_THROW(x.select(0, 2), Error);
  EXPECT_THROW(x.expand({3, 3}), Error);
  EXPECT_THROW(x.transpose(0, 2), Error);
  EXPECT_THROW(x.slice(0, 0, 1, 0), Error);
  try {
    x.expand({4, 3});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expand"), std::string::npos);
  }
}

TEST(Tensor, ContiguousCloneToAndCopy) {
  Tensor x = arange(6, kFloat64).reshape({2, 3}).t();
  Tensor c = x.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector<double>(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  Tensor cl = c.clone();
  EXPECT_NE(cl.storage(), c.storage());
  EXPECT_TRUE(equal(cl, c));
  Tensor xi = from_vector<double>({-1.7, 0.0, 2.9, 255.0}).to(kInt32);
  EXPECT_EQ(xi.to_vector<int32_t>(), (std::vector<int32_t>{-1, 0, 2, 255}));  // truncation, as C++/PyTorch
  EXPECT_EQ(from_vector<float>({0.f, -0.5f, 2.f}).to(kBool).to_vector<bool>(), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(from_vector<bool>({true, false}).to(kFloat32).to_vector<float>(), (std::vector<float>{1.f, 0.f}));
  // copy_ broadcasts, casts and writes through strides.
  Tensor dst = zeros({3, 4}, kFloat64);
  dst.t().copy_(from_vector<int64_t>({1, 2, 3}));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}));
  EXPECT_THROW(dst.copy_(zeros({2})), Error);
  // Overlapping copy within one storage reads everything before writing.
  Tensor a = arange(5, kFloat32);
  a.narrow(0, 1, 4).copy_(a.narrow(0, 0, 4));
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0, 0, 1, 2, 3}));
  // fill_ through a strided view touches only that view.
  Tensor f = zeros({3, 3});
  f.select(1, 1).fill_(5);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{0, 5, 0, 0, 5, 0, 0, 5, 0}));
}

TEST(Tensor, InPlaceOnTensorsThatRequireGradIsRefused) {
  Tensor w = zeros({3}).requires_grad_();
  EXPECT_THROW(w.fill_(1), Error);
  EXPECT_THROW(w.copy_(ones({3})), Error);
  {
    NoGradGuard g;
    w.fill_(2);
  }
  EXPECT_EQ(w.to_vector<float>(), std::vector<float>(3, 2.f));
}

TEST(Tensor, ErrorsCarryFileAndLine) {
  try {
    zeros({2}).item<float>();
    FAIL();
  } catch (const Error& e) {
    EXPECT_GT(e.line(), 0);
    EXPECT_NE(std::string(e.what()).find("core/tensor.cpp"), std::string::npos) << e.what();
  }
}

TEST(Tensor, PrintsShapeDtypeDeviceAndValues) {
  std::ostringstream ss;
  ss << arange(3, kFloat32);
  EXPECT_NE(ss.str().find("[3] float32 on cpu"), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("0, 1, 2"), std::string::npos) << ss.str();
}

TEST(CpuBlockCache, LargeBlocksAreCachedAndReusedAndTheCacheEmpties) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the CPU block cache is off under AddressSanitizer (so that use-after-free stays visible)";
#endif
  if (const char* v = std::getenv("TESSERA_CPU_CACHE_MB"); v != nullptr && std::string(v) == "0")
    GTEST_SKIP() << "TESSERA_CPU_CACHE_MB=0 turns the CPU block cache off";
  cpu_empty_cache();
  const CpuMemoryStats s0 = cpu_memory_stats();
  const void* first = nullptr;
  {
    Tensor a = empty({3, 1000, 1000});  // 12 MB: a cached size
    first = a.data_ptr();
    EXPECT_GE(cpu_memory_stats().allocated, s0.allocated + size_t{12000000});
  }
  const CpuMemoryStats s1 = cpu_memory_stats();
  EXPECT_GE(s1.cached, size_t{12000000});
  EXPECT_EQ(s1.allocated, s0.allocated);
  {
    // The same bin comes back from the cache, not from the system, and holds what is written.
    Tensor b = full({2, 1500, 1000}, 2.5);  // 12 MB again
    EXPECT_EQ(b.data_ptr(), first);
    EXPECT_EQ(cpu_memory_stats().hits, s1.hits + 1);
    EXPECT_EQ(cpu_memory_stats().system_allocs, s1.system_allocs);
    EXPECT_EQ(sum(b).item<float>(), 2.5f * 3e6f);
  }
  {
    Tensor small = zeros({100});  // small blocks bypass the cache
    EXPECT_EQ(cpu_memory_stats().allocated, s0.allocated);
  }
  cpu_empty_cache();
  EXPECT_EQ(cpu_memory_stats().cached, 0u);

  // A full cache gives back blocks of other bins to keep the newly freed one.
  const size_t cap = cpu_set_cache_limit(size_t{20} << 20);
  const void* second = nullptr;
  {
    Tensor a = empty({3, 1000, 1000});  // 12 MB bin
    Tensor b = empty({4, 1000, 1000});  // 16 MB bin
    second = b.data_ptr();
    a = Tensor();                       // cached: 12 MB
    EXPECT_GE(cpu_memory_stats().cached, size_t{12000000});
  }                                     // b freed: 12 + 16 > 20, so the 12 MB block goes
  const CpuMemoryStats s2 = cpu_memory_stats();
  EXPECT_LE(s2.cached, size_t{20} << 20);
  EXPECT_GE(s2.cached, size_t{16000000});
  Tensor again = empty({4, 1000, 1000});
  EXPECT_EQ(again.data_ptr(), second);
  EXPECT_EQ(cpu_memory_stats().hits, s2.hits + 1);
  again = Tensor();
  cpu_set_cache_limit(cap);
  cpu_empty_cache();
}

TEST(CpuBlockCache, HugePageBlocksStartAtDistinctCacheSetOffsets) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "huge-page blocks are off under AddressSanitizer";
#endif
  if (const char* v = std::getenv("TESSERA_CPU_HUGE_PAGES"); v != nullptr && std::string(v) == "0")
    GTEST_SKIP() << "TESSERA_CPU_HUGE_PAGES=0 turns huge-page blocks off";
  cpu_empty_cache();
  const CpuMemoryStats s0 = cpu_memory_stats();
  constexpr int64_t kN = int64_t{3} << 20;  // 12 MiB of floats: a huge-page block
  std::vector<Tensor> blocks;
  std::set<uintptr_t> offsets;
  for (int i = 0; i < 4; ++i) {
    blocks.push_back(full({kN}, static_cast<double>(i + 1)));
    const auto p = reinterpret_cast<uintptr_t>(blocks.back().data_ptr());
    EXPECT_EQ(p % 64, 0u);
    offsets.insert(p % (uintptr_t{2} << 20));
  }
  EXPECT_EQ(cpu_memory_stats().huge_page_blocks, s0.huge_page_blocks + 4);
  EXPECT_EQ(offsets.size(), 4u) << "blocks that start at one offset within their huge pages share cache sets";
  for (int i = 0; i < 4; ++i) {  // every byte of each block is usable, and blocks do not overlap
    EXPECT_EQ(sum(blocks[static_cast<size_t>(i)]).item<double>(), (i + 1) * static_cast<double>(kN));
    EXPECT_EQ(blocks[static_cast<size_t>(i)].data<float>()[kN - 1], static_cast<float>(i + 1));
  }
  blocks.clear();
  cpu_empty_cache();  // frees them through their allocations' starts (a wrong pointer would abort here)
  EXPECT_EQ(cpu_memory_stats().cached, 0u);
}

TEST(Parallel, ThreadSettingAndParallelForCoverEveryIndex) {
  const int before = num_threads();
  EXPECT_GE(before, 1);
  set_num_threads(2);
  EXPECT_EQ(num_threads(), 2);
  std::vector<int> hits(100000, 0);
  parallel_for(static_cast<int64_t>(hits.size()), [&](int64_t i) { hits[static_cast<size_t>(i)] += 1; });
  for (int h : hits) ASSERT_EQ(h, 1);
  std::vector<int> chunk_hits(1000, 0);
  parallel_chunks(1000, 10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) chunk_hits[static_cast<size_t>(i)] += 1;
  });
  for (int h : chunk_hits) ASSERT_EQ(h, 1);
  set_num_threads(before);
  EXPECT_THROW(set_num_threads(0), Error);
}

TEST(CudaAbsent, UnavailableIsReportedNotThrown) {
  if (cuda::is_available()) GTEST_SKIP() << "a CUDA device is present; this test covers machines without one";
  EXPECT_EQ(cuda::device_count(), 0);
  EXPECT_FALSE(cuda::unavailable_reason().empty());
  EXPECT_NO_THROW(cuda::synchronize());
  EXPECT_THROW(zeros({2}, Device("cuda")), Error);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

TEST(Math, ExpNonpositiveIsWithinTwoUlpOfExpf) {
  double worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.0f * static_cast<float>(i) / 2000000.0f;
    const double want = std::exp(static_cast<double>(x));
    const double got = math::exp_nonpositive(x);
    worst = std::max(worst, std::abs(got - want) / want);
  }
  EXPECT_LT(worst, 2.5e-7);  // 2 ulp of float
  EXPECT_EQ(math::exp_nonpositive(0.0f), 1.0f);
  EXPECT_EQ(math::exp_nonpositive(-200.0f), 0.0f);
  EXPECT_EQ(math::exp_nonpositive(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_TRUE(std::isnan(math::exp_nonpositive(std::nanf(""))));
}

}  // namespace
}  // namespace tessera

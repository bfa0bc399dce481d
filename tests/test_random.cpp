// Philox 4x32-10: the published known-answer vectors, determinism, distributions, CUDA parity.
#include "test_helpers.h"

namespace tessera {
namespace {

TEST(Philox, Random123KnownAnswers) {
  // Random123's kat_vectors for philox4x32_10 (counter, key) -> output.
  Philox4x32 a = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(a.v[0], 0x6627e8d5u);
  EXPECT_EQ(a.v[1], 0xe169c58du);
  EXPECT_EQ(a.v[2], 0xbc57ac4cu);
  EXPECT_EQ(a.v[3], 0x9b00dbd8u);
  Philox4x32 b = philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(b.v[0], 0x408f276du);
  EXPECT_EQ(b.v[1], 0x41c83b0eu);
  EXPECT_EQ(b.v[2], 0xa20bc7c6u);
  EXPECT_EQ(b.v[3], 0x6d5451fdu);
  Philox4x32 c = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(c.v[0], 0xd16cfe09u);
  EXPECT_EQ(c.v[1], 0x94fdcceb);
  EXPECT_EQ(c.v[2], 0x5001e420u);
  EXPECT_EQ(c.v[3], 0x24126ea1u);
}

TEST(Philox, SameSeedSameNumbersAndTheStreamAdvances) {
  Generator g1(42), g2(42);
  Tensor a = rand({1000}, kFloat32, &g1), b = rand({1000}, kFloat32, &g2);
  EXPECT_TRUE(test::equal(a, b));
  Tensor a2 = rand({1000}, kFloat32, &g1);
  EXPECT_FALSE(test::equal(a, a2));
  EXPECT_EQ(g1.offset(), 2 * 250u);  // four floats per Philox block
  // Restoring the state replays the stream.
  g2.set_state(42, 250);
  EXPECT_TRUE(test::equal(rand({1000}, kFloat32, &g2), a2));
  // The default generator is reseedable.
  manual_seed(7);
  Tensor d1 = randn({10});
  manual_seed(7);
  EXPECT_TRUE(test::equal(randn({10}), d1));
}

struct Moments {
  double mean, var, lo, hi;
};
Moments moments(const Tensor& t) {
  std::vector<double> v = t.to_vector<double>();
  double m = 0, lo = 1e300, hi = -1e300;
  for (double x : v) {
    m += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  m /= static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - m) * (x - m);
  return {m, var / static_cast<double>(v.size() - 1), lo, hi};
}

TEST(Philox, DistributionsHaveTheRightMoments) {
  Generator g(2026);
  const int64_t n = 1 << 20;
  const double se = 1.0 / std::sqrt(static_cast<double>(n));
  for (DType dt : {kFloat32, kFloat64}) {
    Moments u = moments(uniform({n}, -2.0, 3.0, dt, &g));
    EXPECT_NEAR(u.mean, 0.5, 6 * se * 5 / std::sqrt(12.0));
    EXPECT_NEAR(u.var, 25.0 / 12.0, 0.02);
    EXPECT_GE(u.lo, -2.0);
    EXPECT_LT(u.hi, 3.0);
    Moments z = moments(randn({n}, dt, &g));
    EXPECT_NEAR(z.mean, 0.0, 6 * se);
    EXPECT_NEAR(z.var, 1.0, 0.01);
    EXPECT_GT(z.hi, 4.0);  // tails reach out as they should for 2^20 draws
    EXPECT_LT(z.lo, -4.0);
  }
  Tensor r = randint(-3, 4, {n}, kInt64, &g);
  Moments ri = moments(r);
  EXPECT_EQ(ri.lo, -3);
  EXPECT_EQ(ri.hi, 3);
  EXPECT_NEAR(ri.mean, 0.0, 6 * se * 2);
  // Every value appears about n / 7 times.
  std::vector<int64_t> counts(7, 0);
  for (int64_t v : r.to_vector<int64_t>()) counts[static_cast<size_t>(v + 3)]++;
  for (int64_t c : counts) EXPECT_NEAR(static_cast<double>(c), n / 7.0, 6 * std::sqrt(n / 7.0));
  EXPECT_EQ(randint(0, 5, {3, 2}, kInt32, &g).dtype(), kInt32);
}

TEST(Philox, BadArguments) {
  EXPECT_THROW(rand({3}, kInt64), Error);
  EXPECT_THROW(randn({3}, kBool), Error);
  EXPECT_THROW(randint(5, 5, {3}), Error);
  EXPECT_THROW(randint(0, 2, {3}, kBool), Error);
  EXPECT_THROW(uniform({3}, 2.0, 1.0), Error);
}

TEST(PhiloxCuda, DrawsTheSameNumbersAsTheCpu) {
  TS_SKIP_WITHOUT_CUDA();
  for (DType dt : {kFloat32, kFloat64}) {
    Generator gc(99), gg(99);
    EXPECT_TRUE(test::equal(rand({1001}, options(dt, cuda_device()), &gg).cpu(), rand({1001}, dt, &gc)));
    // Box-Muller's log/cos/sin may differ in the last bit between libm and the device.
    EXPECT_TRUE(test::close(randn({1001}, options(dt, cuda_device()), &gg).cpu(), randn({1001}, dt, &gc), 1e-6, 1e-6));
    EXPECT_TRUE(test::equal(randint(-50, 50, {1001}, options(kInt64, cuda_device()), &gg).cpu(), randint(-50, 50, {1001}, kInt64, &gc)));
  }
}

}  // namespace
}  // namespace tessera

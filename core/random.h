// Counter-based random numbers (Philox 4x32-10, Salmon et al. 2011): element i of a draw depends
// only on (seed, offset, i), so the same seed gives the same numbers on the CPU and on CUDA.
#pragma once

#include <cstdint>
#include <mutex>

#include "core/parallel.h"
#include "core/tensor.h"

namespace tessera {

struct Philox4x32 {
  uint32_t v[4];
};

TS_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
}

// One Philox4x32-10 block: 128 random bits for a 128-bit counter under a 64-bit key.
TS_HD Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = mulhi32(kM0, c0), lo0 = kM0 * c0;
    const uint32_t hi1 = mulhi32(kM1, c2), lo1 = kM1 * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

// Block `block` of the stream (seed, offset): counter = offset + block (64-bit), key = seed.
TS_HD Philox4x32 philox_block(uint64_t seed, uint64_t offset, uint64_t block) {
  const uint64_t ctr = offset + block;
  return philox4x32_10(static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0u, 0u,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// [0, 1) with 24 random bits (float) or 53 (double).
TS_HD float uniform_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }
TS_HD double uniform_double(uint32_t hi, uint32_t lo) {
  const uint64_t bits = ((static_cast<uint64_t>(hi) << 32) | lo) >> 11;
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

// A seed and a position in its stream. Each draw of n values takes ceil(n / per_block) blocks.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  void manual_seed(uint64_t seed);
  uint64_t seed() const;
  uint64_t offset() const;
  void set_state(uint64_t seed, uint64_t offset);
  // Reserves `blocks` Philox blocks and returns the offset of the first (thread-safe).
  uint64_t reserve(uint64_t blocks);

 private:
  mutable std::mutex mu_;
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process-wide generator that factories use unless given one.
Generator& default_generator();
void manual_seed(uint64_t seed);

// Uniform on [low, high); float tensors only.
Tensor rand(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor uniform(const Shape& shape, double low, double high, TensorOptions opts = {}, Generator* gen = nullptr);
// Standard normal (Box-Muller); float tensors only.
Tensor randn(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
// Integers uniform on [low, high); int64 by default.
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts = DType::Int64,
               Generator* gen = nullptr);

}  // namespace tessera

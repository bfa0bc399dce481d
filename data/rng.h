// DataRng: a small deterministic generator (SplitMix64) for data synthesis and augmentation. Each
// sample draws from its own stream, seeded from (seed, epoch, index), so results do not depend on
// which worker thread made the sample or when. The integer and real mappings are written here (the
// standard library's distributions differ between implementations).
#pragma once

#include <cmath>
#include <cstdint>

namespace tessera {

class DataRng {
 public:
  explicit DataRng(uint64_t seed) : state_(seed) {}
  DataRng(uint64_t seed, uint64_t a, uint64_t b = 0) : state_(mix(mix(seed) ^ mix(a + 0x51ed2701u) ^ mix(b + 0x7f4a7c15u))) {}

  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix(state_);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t randint(int64_t lo, int64_t hi) {  // [lo, hi)
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo));
  }
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  bool coin(double p = 0.5) { return uniform() < p; }

 private:
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

}  // namespace tessera

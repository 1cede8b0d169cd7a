// Counter-seeded random streams: every (seed, stream) pair has its own xoshiro256++
// generator, so any thread can produce sample i without producing samples 0..i-1, and the
// output does not depend on how work is split between threads. Normals come from a
// 256-layer ziggurat.
#pragma once

#include <cstdint>

namespace matbert {

// SplitMix64's output function: a bijective 64-bit mix.
inline uint64_t Mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

class RandomStream {
 public:
  // The stream numbered `stream` of seed `seed`.
  RandomStream(uint64_t seed, uint64_t stream);

  // 64 uniform bits (xoshiro256++).
  uint64_t NextU64() {
    const uint64_t result = Rotl(s_[0] + s_[3], 23) + s_[0];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double NextUniform() { return static_cast<double>(NextU64() >> 11) * 0x1p-53; }

  // Standard normal.
  double NextNormal();

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  double NormalSlowPath(uint64_t bits);

  uint64_t s_[4];
};

}  // namespace matbert

#include "worker/data/random.h"

#include <array>
#include <cmath>

namespace matbert {
namespace {

// Ziggurat for f(x) = exp(-x^2/2) with 256 layers of equal area kArea. Layer k covers
// x in [0, x[k]] between heights f(x[k]) and f(x[k+1]); layer 0 is the base strip plus the
// tail beyond kR. Constants from Marsaglia & Tsang (2000), tables computed here.
constexpr int kLayers = 256;
constexpr double kR = 3.6541528853610088;
constexpr double kArea = 0.00492867323399;

struct ZigguratTables {
  std::array<double, kLayers + 1> x;   // layer edges, x[0] > x[1] = kR > ... > x[256] = 0
  std::array<double, kLayers + 1> fx;  // f(x[k])
  ZigguratTables() {
    const double f_r = std::exp(-0.5 * kR * kR);
    x[0] = kArea / f_r;
    x[1] = kR;
    for (int k = 1; k < kLayers - 1; ++k) {
      x[k + 1] = std::sqrt(-2.0 * std::log(kArea / x[k] + std::exp(-0.5 * x[k] * x[k])));
    }
    x[kLayers] = 0;
    for (int k = 0; k <= kLayers; ++k) fx[k] = std::exp(-0.5 * x[k] * x[k]);
  }
};

const ZigguratTables& Tables() {
  static const ZigguratTables tables;
  return tables;
}

}  // namespace

RandomStream::RandomStream(uint64_t seed, uint64_t stream) {
  // Hash (seed, stream) to a start point, then expand it with SplitMix64. Hashing rather
  // than offsetting keeps the streams of neighbouring indices unrelated.
  uint64_t state = Mix64(Mix64(seed + 0x632BE59BD9B4E019ULL) ^ (stream * 0x9E3779B97F4A7C15ULL));
  for (auto& word : s_) {
    state += 0x9E3779B97F4A7C15ULL;
    word = Mix64(state);
  }
}

double RandomStream::NextNormal() {
  const ZigguratTables& t = Tables();
  uint64_t bits = NextU64();
  const int k = static_cast<int>(bits & 0xFF);
  const double u = static_cast<double>(bits >> 11) * 0x1p-53;
  const double x = u * t.x[k];
  if (x < t.x[k + 1]) return (bits & 0x100) ? -x : x;
  return NormalSlowPath(bits);
}

double RandomStream::NormalSlowPath(uint64_t bits) {
  const ZigguratTables& t = Tables();
  while (true) {
    const int k = static_cast<int>(bits & 0xFF);
    const bool negative = bits & 0x100;
    const double x = static_cast<double>(bits >> 11) * 0x1p-53 * t.x[k];
    if (x < t.x[k + 1]) return negative ? -x : x;
    if (k == 0) {
      // Tail beyond kR (Marsaglia 1964).
      double a, b;
      do {
        a = -std::log1p(-NextUniform()) / kR;
        b = -std::log1p(-NextUniform());
      } while (2 * b < a * a);
      return negative ? -(kR + a) : kR + a;
    }
    const double y = t.fx[k] + NextUniform() * (t.fx[k + 1] - t.fx[k]);
    if (y < std::exp(-0.5 * x * x)) return negative ? -x : x;
    bits = NextU64();
  }
}

}  // namespace matbert

#pragma once
#include <cstdint>

namespace oodt {

// A 64-bit mix of seed components (splitmix64 rounds), used for every derived random stream:
// e.g. mix_seed(seed, rank, step) for a step's draws, mix_seed(seed, domain, epoch) for a shuffle.
inline uint64_t mix_seed(uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0) {
  auto splitmix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  uint64_t h = splitmix(a);
  h = splitmix(h ^ b);
  h = splitmix(h ^ c);
  return splitmix(h ^ d);
}

}  // namespace oodt

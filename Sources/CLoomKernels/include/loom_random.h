// Counter-based random numbers (Philox4x32-10): the value at (seed, stream, index) depends on
// nothing else, so any slice of a stream can be regenerated, in any order, on any thread count.
#ifndef LOOM_RANDOM_H
#define LOOM_RANDOM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One Philox4x32-10 block: four 32-bit words for counter (c0..c3) under key (k0, k1).
void loom_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/// y[i] = uniform in [low, high) for stream positions offset .. offset+n-1.
void loom_random_uniform(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n,
                         float low, float high, float *y);

/// y[i] = mean + std · N(0, 1) (Box–Muller in double) for stream positions offset .. offset+n-1.
void loom_random_normal(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n,
                        float mean, float std, float *y);

#ifdef __cplusplus
}
#endif

#endif

#include "loom_random.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t product = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(product >> 32);
    *lo = (uint32_t)product;
}

void loom_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; ++round) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/// Four raw words for block `block` of (seed, stream).
static inline void block_words(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    uint32_t counter[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    loom_philox4x32(counter, key, out);
}

/// Uniform in (0, 1] from 24 random bits; never 0, so log() is safe.
static inline double unit_open(uint32_t word) { return ((double)(word >> 8) + 1.0) / 16777216.0; }

void loom_random_uniform(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n,
                         float low, float high, float *y) {
    for (int64_t i = 0; i < n; ++i) {
        uint64_t position = offset + (uint64_t)i;
        uint32_t words[4];
        block_words(seed, stream, position / 4, words);
        double u = (double)(words[position % 4] >> 8) / 16777216.0;  // [0, 1)
        y[i] = (float)(low + (high - low) * u);
    }
}

void loom_random_normal(uint64_t seed, uint64_t stream, uint64_t offset, int64_t n,
                        float mean, float std, float *y) {
    for (int64_t i = 0; i < n; ++i) {
        // Each position owns one Philox block: two words make one Box–Muller pair.
        uint32_t words[4];
        block_words(seed, stream, offset + (uint64_t)i, words);
        double radius = sqrt(-2.0 * log(unit_open(words[0])));
        double angle = 6.283185307179586 * ((double)(words[1] >> 8) / 16777216.0);
        y[i] = (float)(mean + std * radius * cos(angle));
    }
}

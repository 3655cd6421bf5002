// Single-threaded SGEMM for the shapes of a diffusion transformer, AVX2/FMA:
//   C[m, n] = alpha·op(A)·op(B) (+ C when accumulate) (+ bias[n])
// op(B) is packed in chunks of columns (about 4 MiB each) into panels of NR columns (k-major, NR
// floats per k), each chunk once per call; op(A) is
// packed per block of MC rows and KC depths into panels of MR rows; a 4×24 register tile
// (12 accumulators) runs over each pair of panels. Every element of C is computed by the same
// sequence of operations wherever the caller's slab boundaries fall, so splitting C over threads
// gives the same bits as one call.
#include <immintrin.h>
#include "loom_internal.h"

#define MR 4
#define NV 3
#define NR (8 * NV)
#define KC 384
#define MC 96

/// Columns of op(B) packed at a time: about 2^20 floats of packed B, whatever k is.
static int64_t column_chunk(int64_t k) {
    int64_t chunk = ((int64_t)1 << 20) / (k > 0 ? k : 1) / NR * NR;
    return chunk < NR ? NR : chunk;
}

int64_t loom_sgemm_scratch_floats(int64_t m, int64_t n, int64_t k) {
    (void)m;
    int64_t columns = loom__min64(column_chunk(k), (n + NR - 1) / NR * NR);
    return columns * k + (int64_t)MC * KC + 64;
}

/// op(B) [k, n] into panels: panel p holds columns p·NR..p·NR+NR−1, row kk at dst[kk·NR].
static void pack_b(int trans_b, int64_t n, int64_t k, const float *b, int64_t ldb, float *restrict dst) {
    for (int64_t n0 = 0; n0 < n; n0 += NR, dst += NR * k) {
        int64_t nn = loom__min64(NR, n - n0);
        if (!trans_b) {  // B is [k, n]: NR contiguous floats per row
            for (int64_t kk = 0; kk < k; kk++) {
                const float *src = b + kk * ldb + n0;
                float *out = dst + kk * NR;
                int64_t j = 0;
                for (; j < nn; j++) out[j] = src[j];
                for (; j < NR; j++) out[j] = 0.0f;
            }
        } else if (nn == NR) {  // B is [n, k]: transpose 8×8 blocks
            for (int jb = 0; jb < NR; jb += 8) {
                const float *src = b + (n0 + jb) * ldb;
                int64_t kk = 0;
                for (; kk + 8 <= k; kk += 8) {
                    __m256 r[8];
                    for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(src + q * ldb + kk);
                    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
                    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
                    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
                    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
                    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                    float *out = dst + kk * NR + jb;
                    _mm256_storeu_ps(out + 0 * NR, _mm256_permute2f128_ps(u0, u4, 0x20));
                    _mm256_storeu_ps(out + 1 * NR, _mm256_permute2f128_ps(u1, u5, 0x20));
                    _mm256_storeu_ps(out + 2 * NR, _mm256_permute2f128_ps(u2, u6, 0x20));
                    _mm256_storeu_ps(out + 3 * NR, _mm256_permute2f128_ps(u3, u7, 0x20));
                    _mm256_storeu_ps(out + 4 * NR, _mm256_permute2f128_ps(u0, u4, 0x31));
                    _mm256_storeu_ps(out + 5 * NR, _mm256_permute2f128_ps(u1, u5, 0x31));
                    _mm256_storeu_ps(out + 6 * NR, _mm256_permute2f128_ps(u2, u6, 0x31));
                    _mm256_storeu_ps(out + 7 * NR, _mm256_permute2f128_ps(u3, u7, 0x31));
                }
                for (; kk < k; kk++)
                    for (int j = 0; j < 8; j++) dst[kk * NR + jb + j] = src[j * ldb + kk];
            }
        } else {
            for (int64_t kk = 0; kk < k; kk++)
                for (int64_t j = 0; j < NR; j++) dst[kk * NR + j] = j < nn ? b[(n0 + j) * ldb + kk] : 0.0f;
        }
    }
}

/// op(A) rows [0, mc), depths [0, kc) into panels of MR rows, element (i, kk) of a panel at
/// dst[kk·MR + i]; missing rows are zero.
static void pack_a(int trans_a, int64_t mc, int64_t kc, const float *a, int64_t lda, float *restrict dst) {
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
        int64_t mm = loom__min64(MR, mc - i0);
        if (trans_a) {  // A is [k, m]: MR contiguous floats per depth
            for (int64_t kk = 0; kk < kc; kk++)
                for (int64_t i = 0; i < MR; i++) dst[kk * MR + i] = i < mm ? a[kk * lda + i0 + i] : 0.0f;
        } else if (mm == MR) {
            const float *r0 = a + i0 * lda, *r1 = r0 + lda, *r2 = r1 + lda, *r3 = r2 + lda;
            for (int64_t kk = 0; kk < kc; kk++) {
                dst[kk * MR + 0] = r0[kk];
                dst[kk * MR + 1] = r1[kk];
                dst[kk * MR + 2] = r2[kk];
                dst[kk * MR + 3] = r3[kk];
            }
        } else {
            for (int64_t kk = 0; kk < kc; kk++)
                for (int64_t i = 0; i < MR; i++) dst[kk * MR + i] = i < mm ? a[(i0 + i) * lda + kk] : 0.0f;
        }
    }
}

/// The MR×NR tile c (rows ldc apart) from kc depths of one A panel and one B panel. `first`
/// stores alpha·acc (+ c when accumulate) (+ bias), later depth blocks add alpha·acc to c.
static inline void micro_kernel(int64_t kc, const float *restrict a, const float *restrict b, float *c, int64_t ldc,
                                float alpha, int first, int accumulate, const float *bias) {
    __m256 acc[MR][NV];
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
        for (int j = 0; j < NV; j++) acc[i][j] = _mm256_setzero_ps();
    }
#pragma clang loop unroll_count(4)
    for (int64_t kk = 0; kk < kc; kk++) {
        __m256 bv[NV];
        for (int j = 0; j < NV; j++) bv[j] = _mm256_loadu_ps(b + kk * NR + 8 * j);
        for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(a + kk * MR + i);
            for (int j = 0; j < NV; j++) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    const __m256 scale = _mm256_set1_ps(alpha);
    for (int j = 0; j < NV; j++) {
        __m256 add = (first && bias) ? _mm256_loadu_ps(bias + 8 * j) : _mm256_setzero_ps();
        for (int i = 0; i < MR; i++) {
            __m256 v = alpha == 1.0f ? acc[i][j] : _mm256_mul_ps(acc[i][j], scale);
            float *out = c + i * ldc + 8 * j;
            if (!first || accumulate) v = _mm256_add_ps(_mm256_loadu_ps(out), v);
            if (first && bias) v = _mm256_add_ps(v, add);
            _mm256_storeu_ps(out, v);
        }
    }
}

/// C[m, nc] from a packed op(B) chunk of nc columns (full depth k) and op(A), over depth blocks
/// of KC and row blocks of MC; packed_a holds one MC×KC block.
static void multiply_packed(int trans_a, int64_t m, int64_t nc, int64_t k, float alpha, const float *a, int64_t lda,
                            const float *packed_b, int accumulate, float *c, int64_t ldc, const float *bias,
                            float *packed_a) {
    float edge[MR * NR];
    for (int64_t pc = 0; pc < k; pc += KC) {
        int64_t kc = loom__min64(KC, k - pc);
        int first = pc == 0;
        for (int64_t ic = 0; ic < m; ic += MC) {
            int64_t mc = loom__min64(MC, m - ic);
            pack_a(trans_a, mc, kc, trans_a ? a + pc * lda + ic : a + ic * lda + pc, lda, packed_a);
            for (int64_t jr = 0; jr < nc; jr += NR) {
                int64_t nn = loom__min64(NR, nc - jr);
                const float *bp = packed_b + (jr / NR) * NR * k + pc * NR;
                const float *bias_j = bias ? bias + jr : NULL;
                for (int64_t ir = 0; ir < mc; ir += MR) {
                    int64_t mm = loom__min64(MR, mc - ir);
                    float *cp = c + (ic + ir) * ldc + jr;
                    const float *ap = packed_a + ir * kc;
                    if (mm == MR && nn == NR) {
                        micro_kernel(kc, ap, bp, cp, ldc, alpha, first, accumulate, bias_j);
                        continue;
                    }
                    // Edge tile: the same arithmetic into a full tile, then the valid part.
                    for (int64_t i = 0; i < mm; i++)
                        for (int64_t j = 0; j < nn; j++) edge[i * NR + j] = cp[i * ldc + j];
                    float padded_bias[NR];
                    if (bias_j) for (int64_t j = 0; j < NR; j++) padded_bias[j] = j < nn ? bias_j[j] : 0.0f;
                    micro_kernel(kc, ap, bp, edge, NR, alpha, first, accumulate, bias_j ? padded_bias : NULL);
                    for (int64_t i = 0; i < mm; i++)
                        for (int64_t j = 0; j < nn; j++) cp[i * ldc + j] = edge[i * NR + j];
                }
            }
        }
    }
}

static float *align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/// C = bias (or unchanged when accumulating) for an empty depth.
static void empty_depth(int64_t m, int64_t n, int accumulate, float *c, int64_t ldc, const float *bias) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.0f) + (bias ? bias[j] : 0.0f);
}

void loom_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                const float *b, int64_t ldb, int accumulate, float *c, int64_t ldc, const float *bias, float *scratch) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) return empty_depth(m, n, accumulate, c, ldc, bias);
    float *packed_b = align64(scratch);
    const int64_t chunk = column_chunk(k);
    float *packed_a = packed_b + loom__min64(chunk, (n + NR - 1) / NR * NR) * k;
    for (int64_t jc = 0; jc < n; jc += chunk) {
        int64_t nc = loom__min64(chunk, n - jc);
        pack_b(trans_b, nc, k, trans_b ? b + jc * ldb : b + jc, ldb, packed_b);
        multiply_packed(trans_a, m, nc, k, alpha, a, lda, packed_b, accumulate, c + jc, ldc, bias ? bias + jc : NULL,
                        packed_a);
    }
}

int64_t loom_sgemm_panel_width(void) { return NR; }

int64_t loom_sgemm_packed_b_floats(int64_t n, int64_t k) { return (n + NR - 1) / NR * NR * k; }

void loom_sgemm_pack_b(int trans_b, int64_t n, int64_t k, const float *b, int64_t ldb, float *packed) {
    pack_b(trans_b, n, k, b, ldb, packed);
}

void loom_sgemm_prepacked(int trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                          const float *packed_b, int accumulate, float *c, int64_t ldc, const float *bias,
                          float *scratch) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) return empty_depth(m, n, accumulate, c, ldc, bias);
    multiply_packed(trans_a, m, n, k, alpha, a, lda, packed_b, accumulate, c, ldc, bias, align64(scratch));
}

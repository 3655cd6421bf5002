// Private helpers shared by the CLoomKernels translation units (not part of the public module).
#ifndef LOOM_INTERNAL_H
#define LOOM_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "loom_kernels.h"

#define LOOM_MAX_RANK 8
/// A kernel opens a parallel region only when it touches more than this many elements.
#define LOOM_PAR_MIN_WORK 32768
/// Elementwise kernels work in fixed blocks of this many elements, so the split between
/// vector body and scalar tail never depends on the thread count.
#define LOOM_BLOCK 16384

#define LOOM_SIMD _Pragma("omp simd")

/// sqrtf without the errno side path, so loops using it vectorise.
#ifdef __has_builtin
#if __has_builtin(__builtin_elementwise_sqrt)
#define LOOM_SQRTF(x) __builtin_elementwise_sqrt(x)
#endif
#endif
#ifndef LOOM_SQRTF
#define LOOM_SQRTF(x) sqrtf(x)
#endif

/// Processes items [begin, end) of some kernel; must not depend on how items are grouped.
typedef void (*loom_range_fn)(void *ctx, int64_t begin, int64_t end);

/// The elementwise, row and bf16-conversion kernels are compiled twice: for the x86-64-v3 baseline
/// (256-bit AVX2) and for AVX-512 (F, BW, DQ, VL; 512-bit vectors and mask registers). Both clones
/// run the same scalar program with the same operation order, so their results are bit-identical;
/// only the vector width differs. `loom_set_vector_isa` (the kernel selection, under LOOM_ISA's
/// cap) picks one for the process.
extern int loom__vector_avx512;
#define LOOM_ALWAYS_INLINE inline __attribute__((always_inline))
#define LOOM_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
/// After `static LOOM_ALWAYS_INLINE void name_body(void *, int64_t, int64_t) {...}`: defines the
/// two clones `name_avx2` and `name_avx512` of that range function.
#define LOOM_VECTOR_CLONES(name)                                                              \
    static void name##_avx2(void *ctx, int64_t begin, int64_t end) { name##_body(ctx, begin, end); } \
    LOOM_AVX512_TARGET static void name##_avx512(void *ctx, int64_t begin, int64_t end) {     \
        name##_body(ctx, begin, end);                                                         \
    }
/// The clone of range function `name` for the selected vector ISA.
#define LOOM_VECTOR_CLONE(name) (loom__vector_avx512 ? name##_avx512 : name##_avx2)

/// Runs fn over items [0, n_items): on one thread when the team size is 1 or `work` (elements
/// touched) is small, otherwise splits the items into one contiguous static range per thread.
void loom__parallel_for(int64_t n_items, int64_t work, loom_range_fn fn, void *ctx);

static LOOM_ALWAYS_INLINE int64_t loom__min64(int64_t a, int64_t b) { return a < b ? a : b; }

static LOOM_ALWAYS_INLINE float loom__f32_from_bits(uint32_t u) {
    union { uint32_t u; float f; } v;
    v.u = u;
    return v.f;
}

/// Vectorisable e^x (Cephes polynomial, ~1 ulp): overflows to +inf, underflows through the
/// subnormals to 0, propagates NaN.
static LOOM_ALWAYS_INLINE float loom__expf(float x) {
    float xc = x > 88.8f ? 88.8f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    xc = (x == x) ? xc : 0.0f;
    float n = __builtin_rintf(xc * 1.44269504088896341f);
    float r = __builtin_fmaf(n, -0.693359375f, xc);
    r = __builtin_fmaf(n, 2.12194440e-4f, r);
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = __builtin_fmaf(p, r, 1.3981999507e-3f);
    p = __builtin_fmaf(p, r, 8.3334519073e-3f);
    p = __builtin_fmaf(p, r, 4.1665795894e-2f);
    p = __builtin_fmaf(p, r, 1.6666665459e-1f);
    p = __builtin_fmaf(p, r, 5.0000001201e-1f);
    p = __builtin_fmaf(p, z, r) + 1.0f;
    // 2^n with n in [-150, 128], applied as two normal powers of two so that subnormal
    // results are rounded once and large ones overflow to inf.
    int32_t ni = (int32_t)n;
    int32_t n1 = ni >> 1;
    int32_t n2 = ni - n1;
    float s1 = loom__f32_from_bits((uint32_t)(n1 + 127) << 23);
    float s2 = loom__f32_from_bits((uint32_t)(n2 + 127) << 23);
    float res = (p * s1) * s2;
    return (x == x) ? res : x;
}

/// Vectorisable tanh (a few ulp): odd Taylor polynomial below |x| = 0.4, else
/// (1 - e^{-2|x|}) / (1 + e^{-2|x|}) with the sign of x. Saturates to +-1, propagates NaN.
static LOOM_ALWAYS_INLINE float loom__tanhf(float x) {
    float ax = __builtin_fabsf(x);
    float e = loom__expf(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    float z = x * x;
    float p = -1.455834387e-3f;           // -929569/638512875
    p = __builtin_fmaf(p, z, 3.592128037e-3f);   // 21844/6081075
    p = __builtin_fmaf(p, z, -8.863235530e-3f);  // -1382/155925
    p = __builtin_fmaf(p, z, 2.186948854e-2f);   // 62/2835
    p = __builtin_fmaf(p, z, -5.396825397e-2f);  // -17/315
    p = __builtin_fmaf(p, z, 1.333333333e-1f);   // 2/15
    p = __builtin_fmaf(p, z, -3.333333333e-1f);  // -1/3
    float small = __builtin_fmaf(x * z, p, x);
    return __builtin_copysignf(ax < 0.4f ? small : big, x);
}

/// Sum of x[0..n) in double, 16 interleaved accumulators combined in a fixed order.
static LOOM_ALWAYS_INLINE double loom__sum_f64(const float *restrict x, int64_t n) {
    double acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) acc[k] += (double)x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += (double)x[i];
    double s = 0.0;
    for (int k = 0; k < 16; k++) s += acc[k];
    return s;
}

/// Dot product of a and b in double, 16 interleaved accumulators combined in a fixed order.
static LOOM_ALWAYS_INLINE double loom__dot_f64(const float *restrict a, const float *restrict b, int64_t n) {
    double acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) acc[k] += (double)a[i + k] * b[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += (double)a[i] * b[i];
    double s = 0.0;
    for (int k = 0; k < 16; k++) s += acc[k];
    return s;
}

/// Sum of (x[i] - c)^2 in double.
static LOOM_ALWAYS_INLINE double loom__sumsqdev_f64(const float *restrict x, int64_t n, double c) {
    double acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) {
            double d = (double)x[i + k] - c;
            acc[k] += d * d;
        }
    for (int k = 0; i < n; i++, k++) {
        double d = (double)x[i] - c;
        acc[k] += d * d;
    }
    double s = 0.0;
    for (int k = 0; k < 16; k++) s += acc[k];
    return s;
}

/// NaN-propagating max step.
static LOOM_ALWAYS_INLINE float loom__max_step(float m, float v) { return (v > m || v != v) ? v : m; }

/// NaN-propagating max of x[0..n) (-inf when n == 0).
static LOOM_ALWAYS_INLINE float loom__max_f32(const float *restrict x, int64_t n) {
    float acc[16];
    for (int k = 0; k < 16; k++) acc[k] = -INFINITY;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) acc[k] = loom__max_step(acc[k], x[i + k]);
    for (int k = 0; i < n; i++, k++) acc[k] = loom__max_step(acc[k], x[i]);
    float m = -INFINITY;
    for (int k = 0; k < 16; k++) m = loom__max_step(m, acc[k]);
    return m;
}

#endif

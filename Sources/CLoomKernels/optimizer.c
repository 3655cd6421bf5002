// The optimizer's kernels: the squared global gradient norm and the AdamW + EMA update, each one
// pass over every parameter's elements. Both walk a flat index space [0, total) cut into segments
// (one per parameter, segment i starting at start[i]); the split into blocks depends only on
// `total`, so results do not depend on the team size.
#include "loom_internal.h"

/// Partial sums kept per block by loom_sum_squares (fixed, so no allocation at run time).
#define LOOM_SUMSQ_MAX_BLOCKS 4096

/// The segment holding flat index `j`: the last i with start[i] <= j.
static int64_t segment_of(const int64_t *start, int64_t segments, int64_t j) {
    int64_t lo = 0, hi = segments - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) >> 1;
        if (start[mid] <= j) lo = mid; else hi = mid - 1;
    }
    return lo;
}

static int64_t block_size(int64_t total) {
    int64_t size = LOOM_BLOCK;
    while ((total + size - 1) / size > LOOM_SUMSQ_MAX_BLOCKS) size *= 2;
    return size;
}

typedef struct {
    const float *const *x;
    const int64_t *start;
    int64_t segments, total, block;
    double *partial;
} sumsq_ctx;

static LOOM_ALWAYS_INLINE void sumsq_range_body(void *vctx, int64_t begin, int64_t end) {
    const sumsq_ctx *c = (const sumsq_ctx *)vctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t j = blk * c->block, stop = loom__min64(j + c->block, c->total);
        int64_t s = segment_of(c->start, c->segments, j);
        double sum = 0.0;
        while (j < stop) {
            while (c->start[s + 1] <= j) s++;  // skip empty segments
            int64_t n = loom__min64(stop, c->start[s + 1]) - j;
            const float *x = c->x[s] + (j - c->start[s]);
            sum += loom__dot_f64(x, x, n);
            j += n;
        }
        c->partial[blk] = sum;
    }
}
LOOM_VECTOR_CLONES(sumsq_range)

float loom_sum_squares(const float *const *x, const int64_t *start, int64_t segments) {
    int64_t total = start[segments];
    if (total <= 0) return 0.0f;
    double partial[LOOM_SUMSQ_MAX_BLOCKS];
    int64_t block = block_size(total);
    int64_t blocks = (total + block - 1) / block;
    sumsq_ctx c = {x, start, segments, total, block, partial};
    loom__parallel_for(blocks, total, LOOM_VECTOR_CLONE(sumsq_range), &c);
    double sum = 0.0;
    for (int64_t b = 0; b < blocks; b++) sum += partial[b];
    return (float)sum;
}

typedef struct {
    const float *const *g, *const *p, *const *m, *const *v, *const *e;
    const int64_t *start;
    int64_t segments, total, block;
    float *out;  // [p | m | v | e], `total` elements per part
    loom_adamw_scalars k;
} adamw_ctx;

/// Elements [i0, i0 + n) of segment s, written at flat offset j of each part. Element i reads
/// index i of every operand before writing index i of the output, so the output may be the
/// state operands themselves (the plan updates in place).
static LOOM_ALWAYS_INLINE void adamw_segment(const adamw_ctx *c, int64_t s, int64_t i0, int64_t n, int64_t j) {
    const loom_adamw_scalars k = c->k;
    const float c1 = 1.0f - k.beta1, c2 = 1.0f - k.beta2;
    const float *g = c->g[s] + i0, *p = c->p[s] + i0, *m = c->m[s] + i0, *v = c->v[s] + i0;
    const float *e = k.ema ? c->e[s] + i0 : NULL;
    float *op = c->out + j, *om = op + c->total, *ov = om + c->total, *oe = ov + c->total;
    LOOM_SIMD for (int64_t i = 0; i < n; i++) {
        const float gi = k.clip ? g[i] * k.coef : g[i];
        const float m1 = m[i] * k.beta1 + gi * c1;
        const float v1 = v[i] * k.beta2 + (gi * gi) * c2;
        const float den = LOOM_SQRTF(v1) / k.sqrt_bias2 + k.eps;
        const float pd = k.decay ? p[i] * k.decay_factor : p[i];
        const float p1 = pd - (k.step * m1) / den;
        const float e1 = k.ema ? e[i] * k.ema_decay + p1 * k.ema_keep : 0.0f;
        op[i] = p1;
        om[i] = m1;
        ov[i] = v1;
        if (k.ema) oe[i] = e1;
    }
}

static LOOM_ALWAYS_INLINE void adamw_range_body(void *vctx, int64_t begin, int64_t end) {
    const adamw_ctx *c = (const adamw_ctx *)vctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t j = blk * c->block, stop = loom__min64(j + c->block, c->total);
        int64_t s = segment_of(c->start, c->segments, j);
        while (j < stop) {
            while (c->start[s + 1] <= j) s++;
            int64_t n = loom__min64(stop, c->start[s + 1]) - j;
            adamw_segment(c, s, j - c->start[s], n, j);
            j += n;
        }
    }
}
LOOM_VECTOR_CLONES(adamw_range)

void loom_adamw(const float *const *g, const float *const *p, const float *const *m, const float *const *v,
                const float *const *e, const int64_t *start, int64_t segments, float *out,
                loom_adamw_scalars scalars) {
    int64_t total = start[segments];
    if (total <= 0) return;
    int64_t block = LOOM_BLOCK;
    adamw_ctx c = {g, p, m, v, e, start, segments, total, block, out, scalars};
    loom__parallel_for((total + block - 1) / block, 9 * total, LOOM_VECTOR_CLONE(adamw_range), &c);
}

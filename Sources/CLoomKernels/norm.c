// Row-wise kernels over the last axis of a [rows, cols] buffer: softmax and its backward, the
// online-softmax step of block-wise attention, LayerNorm/RMSNorm and their backward. Statistics
// accumulate in double; each row is handled by one thread. x and y may alias.
#include "loom_internal.h"

typedef struct {
    const float *x;
    float *y;
    int64_t cols;
    float param;   // eps of the norms; the gradient scale of the softmax backward
} rows_ctx;

static LOOM_ALWAYS_INLINE void softmax_range_body(void *vctx, int64_t begin, int64_t end) {
    const rows_ctx *c = (const rows_ctx *)vctx;
    const int64_t n = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * n;
        float *y = c->y + r * n;
        const float m = loom__max_f32(x, n);
        LOOM_SIMD for (int64_t j = 0; j < n; j++) y[j] = loom__expf(x[j] - m);
        const float inv = (float)(1.0 / loom__sum_f64(y, n));
        LOOM_SIMD for (int64_t j = 0; j < n; j++) y[j] *= inv;
    }
}
LOOM_VECTOR_CLONES(softmax_range)

static LOOM_ALWAYS_INLINE void layernorm_range_body(void *vctx, int64_t begin, int64_t end) {
    const rows_ctx *c = (const rows_ctx *)vctx;
    const int64_t n = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * n;
        float *y = c->y + r * n;
        const double mean = loom__sum_f64(x, n) / (double)n;
        const double var = loom__sumsqdev_f64(x, n, mean) / (double)n;
        const float fmean = (float)mean;
        const float rstd = (float)(1.0 / sqrt(var + (double)c->param));
        LOOM_SIMD for (int64_t j = 0; j < n; j++) y[j] = (x[j] - fmean) * rstd;
    }
}
LOOM_VECTOR_CLONES(layernorm_range)

static LOOM_ALWAYS_INLINE void rmsnorm_range_body(void *vctx, int64_t begin, int64_t end) {
    const rows_ctx *c = (const rows_ctx *)vctx;
    const int64_t n = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * n;
        float *y = c->y + r * n;
        const double ms = loom__sumsqdev_f64(x, n, 0.0) / (double)n;
        const float rstd = (float)(1.0 / sqrt(ms + (double)c->param));
        LOOM_SIMD for (int64_t j = 0; j < n; j++) y[j] = x[j] * rstd;
    }
}
LOOM_VECTOR_CLONES(rmsnorm_range)

static void run_rows(loom_range_fn fn, const float *x, float *y, int64_t rows, int64_t cols,
                     float param) {
    if (rows <= 0 || cols <= 0) return;
    rows_ctx c = {x, y, cols, param};
    loom__parallel_for(rows, rows * cols, fn, &c);
}

void loom_softmax_rows(const float *x, float *y, int64_t rows, int64_t cols) {
    run_rows(LOOM_VECTOR_CLONE(softmax_range), x, y, rows, cols, 0.0f);
}

void loom_online_softmax_block(float *s, int64_t rows, int64_t cols, float *m, float *l, float *y,
                               int64_t ldy, int64_t e, int first) {
    // Called per head on one thread: no parallel region here.
    for (int64_t r = 0; r < rows; r++) {
        float *restrict row = s + r * cols;
        const float block_max = loom__max_f32(row, cols);
        const float old_max = first ? -INFINITY : m[r];
        const float new_max = block_max > old_max ? block_max : old_max;
        LOOM_SIMD for (int64_t j = 0; j < cols; j++) row[j] = loom__expf(row[j] - new_max);
        const float block_sum = (float)loom__sum_f64(row, cols);
        if (first) {
            l[r] = block_sum;
        } else {
            const float correction = loom__expf(old_max - new_max);
            l[r] = l[r] * correction + block_sum;
            float *restrict out = y + r * ldy;
            LOOM_SIMD for (int64_t k = 0; k < e; k++) out[k] *= correction;
        }
        m[r] = new_max;
    }
}

typedef struct {
    const float *x, *g;
    float *dx;
    int64_t cols;
    float eps;
    int rms;
} norm_backward_ctx;

static LOOM_ALWAYS_INLINE void norm_backward_range_body(void *vctx, int64_t begin, int64_t end) {
    const norm_backward_ctx *c = (const norm_backward_ctx *)vctx;
    const int64_t n = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *restrict x = c->x + r * n;
        const float *restrict g = c->g + r * n;
        float *restrict dx = c->dx + r * n;
        const double mean = c->rms ? 0.0 : loom__sum_f64(x, n) / (double)n;
        const double second = loom__sumsqdev_f64(x, n, mean) / (double)n;
        const float fmean = (float)mean;
        const float rstd = (float)(1.0 / sqrt(second + (double)c->eps));
        double gs[16] = {0}, gy[16] = {0};
        int64_t j = 0;
        for (; j + 16 <= n; j += 16)
            for (int k = 0; k < 16; k++) {
                const float y = (x[j + k] - fmean) * rstd;
                gs[k] += g[j + k];
                gy[k] += (double)g[j + k] * y;
            }
        for (int k = 0; j < n; j++, k++) {
            const float y = (x[j] - fmean) * rstd;
            gs[k] += g[j];
            gy[k] += (double)g[j] * y;
        }
        double sum_g = 0, sum_gy = 0;
        for (int k = 0; k < 16; k++) {
            sum_g += gs[k];
            sum_gy += gy[k];
        }
        const float g_mean = c->rms ? 0.0f : (float)(sum_g / (double)n);
        const float gy_mean = (float)(sum_gy / (double)n);
        LOOM_SIMD for (int64_t i = 0; i < n; i++) {
            const float y = (x[i] - fmean) * rstd;
            dx[i] = rstd * (g[i] - g_mean - y * gy_mean);
        }
    }
}
LOOM_VECTOR_CLONES(norm_backward_range)

void loom_norm_backward_rows(const float *x, const float *g, float *dx, int64_t rows, int64_t cols, float eps, int rms) {
    if (rows <= 0 || cols <= 0) return;
    norm_backward_ctx c = {x, g, dx, cols, eps, rms};
    loom__parallel_for(rows, rows * cols, LOOM_VECTOR_CLONE(norm_backward_range), &c);
}

// g ← p ⊙ (g − Σ g·p) · scale over each row (x = p, y = g, param = scale).
static LOOM_ALWAYS_INLINE void softmax_backward_range_body(void *vctx, int64_t begin, int64_t end) {
    const rows_ctx *c = (const rows_ctx *)vctx;
    const int64_t n = c->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *restrict p = c->x + r * n;
        float *restrict g = c->y + r * n;
        const float dot = (float)loom__dot_f64(g, p, n), scale = c->param;
        LOOM_SIMD for (int64_t i = 0; i < n; i++) g[i] = p[i] * (g[i] - dot) * scale;
    }
}
LOOM_VECTOR_CLONES(softmax_backward_range)

void loom_softmax_backward_rows(const float *p, float *g, int64_t rows, int64_t cols, float scale) {
    run_rows(LOOM_VECTOR_CLONE(softmax_backward_range), p, g, rows, cols, scale);
}

void loom_layernorm_rows(const float *x, float *y, int64_t rows, int64_t cols, float eps) {
    run_rows(LOOM_VECTOR_CLONE(layernorm_range), x, y, rows, cols, eps);
}

void loom_rmsnorm_rows(const float *x, float *y, int64_t rows, int64_t cols, float eps) {
    run_rows(LOOM_VECTOR_CLONE(rmsnorm_range), x, y, rows, cols, eps);
}

void loom_softmax_apply_stats(float *s, int64_t rows, int64_t cols, const float *m, const float *l) {
    for (int64_t r = 0; r < rows; r++) {
        float *restrict row = s + r * cols;
        const float max = m[r], inverse = 1.0f / l[r];
        LOOM_SIMD for (int64_t j = 0; j < cols; j++) row[j] = loom__expf(row[j] - max) * inverse;
    }
}

void loom_rows_dot_accumulate(const float *p, const float *g, int64_t rows, int64_t cols, double *dsum) {
    for (int64_t r = 0; r < rows; r++) dsum[r] += loom__dot_f64(p + r * cols, g + r * cols, cols);
}

void loom_softmax_backward_block(const float *p, float *g, int64_t rows, int64_t cols, const double *dsum, float scale) {
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict pr = p + r * cols;
        float *restrict gr = g + r * cols;
        const float d = (float)dsum[r];
        LOOM_SIMD for (int64_t j = 0; j < cols; j++) gr[j] = pr[j] * (gr[j] - d) * scale;
    }
}

// Thread control and the flat elementwise kernels (unary, affine, fill, gather, rotate_pairs).
// Broadcasting binary ops and strided copies live in layout.c, reductions in reduce.c and the
// row-wise normalisations in norm.c.
#include "loom_internal.h"

static int loom_threads = 1;

void loom_set_num_threads(int n) { __atomic_store_n(&loom_threads, n < 1 ? 1 : n, __ATOMIC_RELAXED); }

int loom_get_num_threads(void) { return __atomic_load_n(&loom_threads, __ATOMIC_RELAXED); }

void loom__parallel_for(int64_t n_items, int64_t work, loom_range_fn fn, void *ctx) {
    if (n_items <= 0) return;
    int nt = loom_get_num_threads();
    if (nt > n_items) nt = (int)n_items;
    if (nt <= 1 || work <= LOOM_PAR_MIN_WORK) {
        fn(ctx, 0, n_items);
        return;
    }
    // One contiguous range of items per thread; which thread runs a range does not matter,
    // since every item is computed the same way whatever range it belongs to.
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        int64_t begin = n_items * t / nt;
        int64_t end = n_items * (t + 1) / nt;
        if (begin < end) fn(ctx, begin, end);
    }
}

void loom_parallel_entries(int64_t count, int workers, loom_entry_fn fn, void *ctx) {
    if (count <= 0) return;
    if (workers > count) workers = (int)count;
    if (workers <= 1) {
        for (int64_t i = 0; i < count; i++) fn(ctx, 0, i);
        return;
    }
    // Entries dealt round-robin: worker w runs w, w + workers, ...; each entry runs on one thread.
#pragma omp parallel for num_threads(workers) schedule(static, 1)
    for (int w = 0; w < workers; w++) {
        for (int64_t i = w; i < count; i += workers) fn(ctx, w, i);
    }
}

// ---------------------------------------------------------------------------------------------
// Unary

static inline float sigmoid1(float x) { return 1.0f / (1.0f + loom__expf(-x)); }

static inline float gelu_tanh1(float x) {
    float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + loom__tanhf(inner));
}

// y and x may alias exactly (same index read then written), which `omp simd` permits.
static LOOM_ALWAYS_INLINE void unary_block(int op, const float *x, float *y, int64_t n) {
    switch (op) {
    case LOOM_U_NEG: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = -x[i]; break;
    case LOOM_U_EXP: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = loom__expf(x[i]); break;
    case LOOM_U_LOG: for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]); break;
    case LOOM_U_SQRT: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = LOOM_SQRTF(x[i]); break;
    case LOOM_U_RSQRT:
        LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = 1.0f / LOOM_SQRTF(x[i]);
        break;
    case LOOM_U_TANH: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = loom__tanhf(x[i]); break;
    case LOOM_U_SIN: for (int64_t i = 0; i < n; i++) y[i] = sinf(x[i]); break;
    case LOOM_U_COS: for (int64_t i = 0; i < n; i++) y[i] = cosf(x[i]); break;
    case LOOM_U_SILU:
        // x / (1 + e^-x): e^-x -> inf for very negative x gives -0, never NaN.
        LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + loom__expf(-x[i]));
        break;
    case LOOM_U_GELU_TANH: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = gelu_tanh1(x[i]); break;
    case LOOM_U_SIGMOID: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = sigmoid1(x[i]); break;
    case LOOM_U_SQUARE: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i]; break;
    case LOOM_U_ABS: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = __builtin_fabsf(x[i]); break;
    case LOOM_U_RECIP: LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = 1.0f / x[i]; break;
    case LOOM_U_RELU:
        LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];  // NaN stays NaN
        break;
    case LOOM_U_SIGN:
        LOOM_SIMD for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            y[i] = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v);  // +-0 and NaN pass through
        }
        break;
    default: break;
    }
}

typedef struct {
    int op;
    const float *x;
    float *y;
    int64_t n;
    float a, b;
} flat_ctx;

static LOOM_ALWAYS_INLINE void unary_range_body(void *vctx, int64_t begin, int64_t end) {
    const flat_ctx *c = (const flat_ctx *)vctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t s = blk * LOOM_BLOCK, len = loom__min64(LOOM_BLOCK, c->n - s);
        unary_block(c->op, c->x + s, c->y + s, len);
    }
}
LOOM_VECTOR_CLONES(unary_range)

static int64_t n_blocks(int64_t n) { return (n + LOOM_BLOCK - 1) / LOOM_BLOCK; }

void loom_unary(int op, const float *x, float *y, int64_t n) {
    if (n <= 0) return;
    flat_ctx c = {op, x, y, n, 0, 0};
    loom__parallel_for(n_blocks(n), n, LOOM_VECTOR_CLONE(unary_range), &c);
}

static LOOM_ALWAYS_INLINE void affine_range_body(void *vctx, int64_t begin, int64_t end) {
    const flat_ctx *c = (const flat_ctx *)vctx;
    const float scale = c->a, shift = c->b;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t s = blk * LOOM_BLOCK, len = loom__min64(LOOM_BLOCK, c->n - s);
        const float *x = c->x + s;
        float *y = c->y + s;
        LOOM_SIMD for (int64_t i = 0; i < len; i++) y[i] = scale * x[i] + shift;
    }
}
LOOM_VECTOR_CLONES(affine_range)

void loom_affine(const float *x, float *y, int64_t n, float scale, float shift) {
    if (n <= 0) return;
    flat_ctx c = {0, x, y, n, scale, shift};
    loom__parallel_for(n_blocks(n), n, LOOM_VECTOR_CLONE(affine_range), &c);
}

static void fill_range(void *vctx, int64_t begin, int64_t end) {
    const flat_ctx *c = (const flat_ctx *)vctx;
    const float v = c->a;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t s = blk * LOOM_BLOCK, len = loom__min64(LOOM_BLOCK, c->n - s);
        float *restrict y = c->y + s;
        for (int64_t i = 0; i < len; i++) y[i] = v;
    }
}

void loom_fill(float *y, int64_t n, float value) {
    if (n <= 0) return;
    flat_ctx c = {0, NULL, y, n, value, 0};
    loom__parallel_for(n_blocks(n), n, fill_range, &c);
}

// ---------------------------------------------------------------------------------------------
// rotate_pairs: (a, b) -> (-b, a). Both values of a pair are read before either is written, so
// x and y may alias exactly.

static void rotate_range(void *vctx, int64_t begin, int64_t end) {
    const flat_ctx *c = (const flat_ctx *)vctx;
    const int64_t pairs = c->n / 2;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t s = blk * (LOOM_BLOCK / 2), len = loom__min64(LOOM_BLOCK / 2, pairs - s);
        const float *x = c->x + 2 * s;
        float *y = c->y + 2 * s;
        LOOM_SIMD for (int64_t p = 0; p < len; p++) {
            float a = x[2 * p], b = x[2 * p + 1];
            y[2 * p] = -b;
            y[2 * p + 1] = a;
        }
    }
}

void loom_rotate_pairs(const float *x, float *y, int64_t n) {
    if (n <= 0) return;
    int64_t pairs = n / 2;
    flat_ctx c = {0, x, y, n, 0, 0};
    loom__parallel_for((pairs + LOOM_BLOCK / 2 - 1) / (LOOM_BLOCK / 2), n, rotate_range, &c);
    if (n & 1) y[n - 1] = x[n - 1];  // odd n is outside the contract; keep the last element
}

// ---------------------------------------------------------------------------------------------
// gather_rows: every index is validated before anything is written.

typedef struct {
    const float *table;
    int64_t cols;
    const int64_t *idx;
    float *y;
} gather_ctx;

static void gather_range(void *vctx, int64_t begin, int64_t end) {
    const gather_ctx *c = (const gather_ctx *)vctx;
    const size_t bytes = (size_t)c->cols * sizeof(float);
    for (int64_t i = begin; i < end; i++) memcpy(c->y + i * c->cols, c->table + c->idx[i] * c->cols, bytes);
}

int64_t loom_gather_rows(const float *table, int64_t table_rows, int64_t cols,
                         const int64_t *idx, int64_t n, float *y) {
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= table_rows) return i;
    if (n <= 0 || cols <= 0) return -1;
    gather_ctx c = {table, cols, idx, y};
    loom__parallel_for(n, n * cols, gather_range, &c);
    return -1;
}

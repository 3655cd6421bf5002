// Fused kernels: elementwise programs over tiles, GEMM epilogues, norm + adaLN modulate.
#include "loom_fused.h"
#include "loom_internal.h"

#define EW_TILE 256
#define EW_MAX_REGISTERS 64

typedef struct {
    int rank;
    const int64_t *shape;
    int n_inputs;
    const float *const *inputs;
    const int64_t *strides;
    int n_instructions;
    const loom_ew_instruction *program;
    float *y;
    int64_t total;
    int contiguous[EW_MAX_REGISTERS]; // input i is laid out exactly like y
    int scalar[EW_MAX_REGISTERS];     // input i is one broadcast value
} ew_ctx;

/// Reads input `i` for flat output positions [begin, begin + n) into dst, one run along the last
/// axis at a time: a contiguous run is copied, a broadcast run is filled, a strided run is gathered.
static void ew_gather(const ew_ctx *c, int i, int64_t begin, int64_t n, float *dst) {
    const float *src = c->inputs[i];
    const int64_t *st = c->strides + (int64_t)i * c->rank;
    if (c->rank == 0) {
        for (int64_t k = 0; k < n; ++k) dst[k] = src[0];
        return;
    }
    int last = c->rank - 1;
    int64_t inner = c->shape[last], inner_stride = st[last];
    int64_t coord[LOOM_MAX_RANK];
    int64_t rest = begin, offset = 0;
    for (int d = last; d >= 0; --d) {
        coord[d] = rest % c->shape[d];
        rest /= c->shape[d];
        offset += coord[d] * st[d];
    }
    int64_t k = 0;
    while (k < n) {
        int64_t run = loom__min64(inner - coord[last], n - k);
        const float *from = src + offset;
        if (inner_stride == 1) {
            memcpy(dst + k, from, (size_t)run * sizeof(float));
        } else if (inner_stride == 0) {
            float v = *from;
            for (int64_t j = 0; j < run; ++j) dst[k + j] = v;
        } else {
            for (int64_t j = 0; j < run; ++j) dst[k + j] = from[j * inner_stride];
        }
        k += run;
        // advance to the start of the next run: move along the last axis, carry into outer axes
        offset += run * inner_stride;
        coord[last] += run;
        int d = last;
        while (d > 0 && coord[d] >= c->shape[d]) {
            offset -= coord[d] * st[d];
            coord[d] = 0;
            --d;
            coord[d] += 1;
            offset += st[d];
        }
    }
}

static LOOM_ALWAYS_INLINE void ew_binary(int op, const float *restrict a, const float *restrict b, float *restrict y, int64_t n) {
    switch (op) {
    case LOOM_B_ADD: LOOM_SIMD for (int64_t k = 0; k < n; ++k) y[k] = a[k] + b[k]; break;
    case LOOM_B_SUB: LOOM_SIMD for (int64_t k = 0; k < n; ++k) y[k] = a[k] - b[k]; break;
    case LOOM_B_MUL: LOOM_SIMD for (int64_t k = 0; k < n; ++k) y[k] = a[k] * b[k]; break;
    case LOOM_B_DIV: LOOM_SIMD for (int64_t k = 0; k < n; ++k) y[k] = a[k] / b[k]; break;
    default: {
        // max/min through the reference kernel keeps their NaN semantics identical
        int64_t shape = n, one = 1;
        loom_binary(op, 1, &shape, a, &one, b, &one, y);
    }
    }
}

static LOOM_ALWAYS_INLINE void ew_range_body(void *vctx, int64_t tile_begin, int64_t tile_end) {
    const ew_ctx *c = (const ew_ctx *)vctx;
    float registers[EW_MAX_REGISTERS][EW_TILE];
    const float *views[EW_MAX_REGISTERS];
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
        int64_t begin = tile * EW_TILE;
        int64_t n = loom__min64(EW_TILE, c->total - begin);
        for (int i = 0; i < c->n_inputs; ++i) {
            if (c->contiguous[i]) {
                views[i] = c->inputs[i] + begin;
            } else if (c->scalar[i]) {
                float v = c->inputs[i][0];
                for (int64_t k = 0; k < n; ++k) registers[i][k] = v;
                views[i] = registers[i];
            } else {
                ew_gather(c, i, begin, n, registers[i]);
                views[i] = registers[i];
            }
        }
        for (int j = 0; j < c->n_instructions; ++j) {
            const loom_ew_instruction *in = &c->program[j];
            int r = c->n_inputs + j;
            int is_last = j == c->n_instructions - 1;
            float *out = is_last ? c->y + begin : registers[r];
            switch (in->kind) {
            case LOOM_EW_UNARY: loom_unary(in->op, views[in->a], out, n); break;
            case LOOM_EW_AFFINE: loom_affine(views[in->a], out, n, in->f0, in->f1); break;
            case LOOM_EW_BINARY: ew_binary(in->op, views[in->a], views[in->b], out, n); break;
            default: for (int64_t k = 0; k < n; ++k) out[k] = in->f0; break;
            }
            views[r] = out;
        }
    }
}
LOOM_VECTOR_CLONES(ew_range)

void loom_elementwise(int rank, const int64_t *shape, int n_inputs, const float *const *inputs,
                      const int64_t *strides, int n_instructions, const loom_ew_instruction *program,
                      float *y) {
    ew_ctx c;
    c.rank = rank;
    c.shape = shape;
    c.n_inputs = n_inputs;
    c.inputs = inputs;
    c.strides = strides;
    c.n_instructions = n_instructions;
    c.program = program;
    c.y = y;
    c.total = 1;
    for (int d = 0; d < rank; ++d) c.total *= shape[d];
    if (c.total == 0 || n_instructions <= 0 || n_inputs + n_instructions > EW_MAX_REGISTERS) return;
    int64_t expected = 1;
    int64_t contiguous_strides[LOOM_MAX_RANK];
    for (int d = rank - 1; d >= 0; --d) {
        contiguous_strides[d] = expected;
        expected *= shape[d];
    }
    for (int i = 0; i < n_inputs; ++i) {
        int same = 1, zero = 1;
        for (int d = 0; d < rank; ++d) {
            int64_t s = strides[(int64_t)i * rank + d];
            if (shape[d] > 1 && s != contiguous_strides[d]) same = 0;
            if (shape[d] > 1 && s != 0) zero = 0;
        }
        c.contiguous[i] = same;
        c.scalar[i] = zero && !same;
    }
    int64_t tiles = (c.total + EW_TILE - 1) / EW_TILE;
    loom__parallel_for(tiles, c.total * (n_inputs + n_instructions), LOOM_VECTOR_CLONE(ew_range), &c);
}

typedef struct {
    float *y;
    int64_t cols, ld;
    const float *bias;
    int act;
} bias_ctx;

static LOOM_ALWAYS_INLINE void bias_range_body(void *vctx, int64_t begin, int64_t end) {
    const bias_ctx *c = (const bias_ctx *)vctx;
    for (int64_t r = begin; r < end; ++r) {
        float *row = c->y + r * c->ld;
        if (c->bias) {
            const float *restrict b = c->bias;
            LOOM_SIMD for (int64_t k = 0; k < c->cols; ++k) row[k] += b[k];
        }
        if (c->act >= 0) loom_unary(c->act, row, row, c->cols);
    }
}
LOOM_VECTOR_CLONES(bias_range)

void loom_bias_activation_tile(float *y, int64_t rows, int64_t cols, int64_t ld, const float *bias, int act) {
    bias_ctx c = {y, cols, ld, bias, act};
    LOOM_VECTOR_CLONE(bias_range)(&c, 0, rows);
}

typedef struct {
    const float *x, *weight, *shift, *scale;
    float *y;
    int64_t tokens, dim;
    float eps;
    int rms;
} norm_ctx;

static LOOM_ALWAYS_INLINE void norm_range_body(void *vctx, int64_t begin, int64_t end) {
    const norm_ctx *c = (const norm_ctx *)vctx;
    int64_t d = c->dim;
    for (int64_t row = begin; row < end; ++row) {
        int64_t b = row / c->tokens;
        const float *restrict x = c->x + row * d;
        const float *restrict sh = c->shift + b * d;
        const float *restrict sc = c->scale + b * d;
        float *restrict y = c->y + row * d;
        // Statistics in double over 16 interleaved partial sums (vectorised, same order at any
        // thread count).
        double mean = c->rms ? 0.0 : loom__sum_f64(x, d) / (double)d;
        double second = loom__sumsqdev_f64(x, d, mean) / (double)d;
        float m = (float)mean;
        float r = (float)(1.0 / sqrt(second + (double)c->eps));
        if (c->rms && c->weight) {
            const float *restrict w = c->weight;
            LOOM_SIMD for (int64_t k = 0; k < d; ++k) y[k] = ((x[k] * r) * w[k]) * (1.0f + sc[k]) + sh[k];
        } else {
            LOOM_SIMD for (int64_t k = 0; k < d; ++k) y[k] = ((x[k] - m) * r) * (1.0f + sc[k]) + sh[k];
        }
    }
}
LOOM_VECTOR_CLONES(norm_range)

void loom_norm_modulate(const float *x, const float *weight, const float *shift, const float *scale,
                        float *y, int64_t batch, int64_t tokens, int64_t dim, float eps, int rms) {
    norm_ctx c = {x, weight, shift, scale, y, tokens, dim, eps, rms};
    loom__parallel_for(batch * tokens, batch * tokens * dim, LOOM_VECTOR_CLONE(norm_range), &c);
}

// Reductions over any set of axes of a contiguous tensor (sum / mean / max).
//
// The input shape is simplified first (size-1 axes dropped, adjacent axes with the same
// reduce flag merged). One reduced group leaves the view [outer, R, inner]:
//   inner == 1 -> each output is a contiguous row:       rows path (double accumulators)
//   inner  > 1 -> outputs are vectorised along `inner`:   column path (double accumulator row)
// Anything else (several separated reduced groups) takes the generic odometer path.
// Each output is reduced by one thread in a fixed order (parallelism is over outputs only).
#include "loom_internal.h"

enum { COL_BLOCK = 256 };  // inner columns per work item in the column path

typedef struct {
    int op;
    const float *x;
    float *y;
    int64_t outer, R, inner;
    int64_t col_blocks;
    // generic path: kept / reduced groups with their input strides
    int nk, nr;
    int64_t k_shape[LOOM_MAX_RANK], k_stride[LOOM_MAX_RANK];
    int64_t r_shape[LOOM_MAX_RANK], r_stride[LOOM_MAX_RANK];
    int64_t count;  // elements reduced into each output
} reduce_ctx;

static inline float finish(int op, double sum, int64_t count) {
    return op == LOOM_R_MEAN ? (float)(sum / (double)count) : (float)sum;
}

static LOOM_ALWAYS_INLINE void rows_range_body(void *vctx, int64_t begin, int64_t end) {
    const reduce_ctx *c = (const reduce_ctx *)vctx;
    for (int64_t o = begin; o < end; o++) {
        const float *row = c->x + o * c->R;
        c->y[o] = c->op == LOOM_R_MAX ? loom__max_f32(row, c->R)
                                      : finish(c->op, loom__sum_f64(row, c->R), c->R);
    }
}
LOOM_VECTOR_CLONES(rows_range)

static LOOM_ALWAYS_INLINE void cols_range_body(void *vctx, int64_t begin, int64_t end) {
    const reduce_ctx *c = (const reduce_ctx *)vctx;
    const int64_t R = c->R, I = c->inner;
    for (int64_t item = begin; item < end; item++) {
        const int64_t o = item / c->col_blocks;
        const int64_t i0 = (item % c->col_blocks) * COL_BLOCK;
        const int64_t n = loom__min64(COL_BLOCK, I - i0);
        const float *base = c->x + o * R * I + i0;
        float *restrict y = c->y + o * I + i0;
        if (c->op == LOOM_R_MAX) {
            float acc[COL_BLOCK];
            for (int64_t i = 0; i < n; i++) acc[i] = -INFINITY;
            for (int64_t r = 0; r < R; r++) {
                const float *restrict row = base + r * I;
                for (int64_t i = 0; i < n; i++) acc[i] = loom__max_step(acc[i], row[i]);
            }
            for (int64_t i = 0; i < n; i++) y[i] = acc[i];
        } else {
            double acc[COL_BLOCK];
            for (int64_t i = 0; i < n; i++) acc[i] = 0.0;
            for (int64_t r = 0; r < R; r++) {
                const float *restrict row = base + r * I;
                for (int64_t i = 0; i < n; i++) acc[i] += (double)row[i];
            }
            for (int64_t i = 0; i < n; i++) y[i] = finish(c->op, acc[i], R);
        }
    }
}
LOOM_VECTOR_CLONES(cols_range)

static void generic_range(void *vctx, int64_t begin, int64_t end) {
    const reduce_ctx *c = (const reduce_ctx *)vctx;
    const int nr = c->nr, last = nr - 1;
    const int64_t inner_n = c->r_shape[last], inner_s = c->r_stride[last];
    for (int64_t o = begin; o < end; o++) {
        int64_t base = 0, rem = o;
        for (int d = c->nk - 1; d >= 0; d--) {
            base += (rem % c->k_shape[d]) * c->k_stride[d];
            rem /= c->k_shape[d];
        }
        int64_t idx[LOOM_MAX_RANK] = {0};
        double sum = 0.0;
        float mx = -INFINITY;
        for (;;) {
            int64_t off = base;
            for (int d = 0; d < last; d++) off += idx[d] * c->r_stride[d];
            const float *p = c->x + off;
            if (c->op == LOOM_R_MAX)
                for (int64_t i = 0; i < inner_n; i++) mx = loom__max_step(mx, p[i * inner_s]);
            else
                for (int64_t i = 0; i < inner_n; i++) sum += (double)p[i * inner_s];
            int d = last - 1;
            while (d >= 0 && ++idx[d] == c->r_shape[d]) idx[d--] = 0;
            if (d < 0) break;
        }
        c->y[o] = c->op == LOOM_R_MAX ? mx : finish(c->op, sum, c->count);
    }
}

void loom_reduce(int op, int rank, const int64_t *in_shape, const int32_t *reduce_mask,
                 const float *x, float *y) {
    if (rank < 0 || rank > LOOM_MAX_RANK) return;
    int64_t total = 1, out_n = 1, count = 1;
    for (int d = 0; d < rank; d++) {
        int64_t s = in_shape[d] < 0 ? 0 : in_shape[d];
        total *= s;
        if (reduce_mask[d]) count *= s;
        else out_n *= s;
    }
    if (out_n == 0) return;
    if (count == 0) {  // empty reduction: identity (sum 0, mean NaN, max -inf)
        float v = op == LOOM_R_MAX ? -INFINITY : (op == LOOM_R_MEAN ? NAN : 0.0f);
        loom_fill(y, out_n, v);
        return;
    }

    // Simplify into alternating groups.
    int64_t gs[LOOM_MAX_RANK];
    int gm[LOOM_MAX_RANK];
    int ng = 0;
    for (int d = 0; d < rank; d++) {
        if (in_shape[d] == 1) continue;
        int m = reduce_mask[d] != 0;
        if (ng > 0 && gm[ng - 1] == m) {
            gs[ng - 1] *= in_shape[d];
        } else {
            gs[ng] = in_shape[d];
            gm[ng] = m;
            ng++;
        }
    }
    int nred = 0, g_red = -1;
    for (int g = 0; g < ng; g++)
        if (gm[g]) {
            nred++;
            g_red = g;
        }
    if (nred == 0) {  // nothing (non-trivially) reduced: sum, mean and max of one element
        memmove(y, x, (size_t)total * sizeof(float));
        return;
    }

    reduce_ctx c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.x = x;
    c.y = y;
    c.count = count;
    if (nred == 1) {
        c.outer = 1;
        c.inner = 1;
        for (int g = 0; g < g_red; g++) c.outer *= gs[g];
        for (int g = g_red + 1; g < ng; g++) c.inner *= gs[g];
        c.R = gs[g_red];
        if (c.inner == 1) {
            loom__parallel_for(c.outer, total, LOOM_VECTOR_CLONE(rows_range), &c);
        } else {
            c.col_blocks = (c.inner + COL_BLOCK - 1) / COL_BLOCK;
            loom__parallel_for(c.outer * c.col_blocks, total, LOOM_VECTOR_CLONE(cols_range), &c);
        }
        return;
    }

    int64_t stride = 1;
    int64_t st[LOOM_MAX_RANK];
    for (int g = ng - 1; g >= 0; g--) {
        st[g] = stride;
        stride *= gs[g];
    }
    for (int g = 0; g < ng; g++) {
        if (gm[g]) {
            c.r_shape[c.nr] = gs[g];
            c.r_stride[c.nr++] = st[g];
        } else {
            c.k_shape[c.nk] = gs[g];
            c.k_stride[c.nk++] = st[g];
        }
    }
    loom__parallel_for(out_n, total, generic_range, &c);
}

// Strided index-space kernels: broadcasting binary ops and the general strided copy.
//
// Both first simplify the index space (drop size-1 axes, merge adjacent axes that are laid out
// contiguously relative to each other in every operand), then walk it in fixed chunks of
// LOOM_BLOCK elements in row-major order; each chunk runs its innermost axis through a small
// specialised 1-D loop (contiguous / broadcast / strided).
#include "loom_internal.h"

typedef struct {
    int rank;                            // >= 1 after simplification
    int64_t shape[LOOM_MAX_RANK];
    int64_t st[2][LOOM_MAX_RANK];        // element strides of the (up to) two operands
} index_space;

/// Simplifies `shape` with `nops` stride vectors; returns the element count (0: nothing to do).
static int64_t simplify(index_space *sp, int rank, const int64_t *shape, int nops,
                        const int64_t *const *strides) {
    int64_t total = 1;
    for (int d = 0; d < rank; d++) {
        if (shape[d] <= 0) return 0;
        total *= shape[d];
    }
    // Collect from the innermost axis outwards, merging axis d into the last collected one when
    // every operand steps over it exactly one collected-axis length.
    int64_t sh[LOOM_MAX_RANK], st[2][LOOM_MAX_RANK];
    int r = 0;
    for (int d = rank - 1; d >= 0; d--) {
        if (shape[d] == 1) continue;
        if (r > 0) {
            int mergeable = 1;
            for (int o = 0; o < nops; o++)
                if (strides[o][d] != st[o][r - 1] * sh[r - 1]) mergeable = 0;
            if (mergeable) {
                sh[r - 1] *= shape[d];
                continue;
            }
        }
        sh[r] = shape[d];
        for (int o = 0; o < nops; o++) st[o][r] = strides[o][d];
        r++;
    }
    if (r == 0) {  // a single element
        sh[0] = 1;
        for (int o = 0; o < nops; o++) st[o][0] = 0;
        r = 1;
    }
    sp->rank = r;
    for (int k = 0; k < r; k++) {
        sp->shape[k] = sh[r - 1 - k];
        for (int o = 0; o < nops; o++) sp->st[o][k] = st[o][r - 1 - k];
    }
    return total;
}

/// A position in a simplified index space plus the matching element offset of each operand.
typedef struct {
    int64_t idx[LOOM_MAX_RANK];
    int64_t off[2];
} cursor;

static void cursor_init(const index_space *sp, int64_t flat, cursor *cur) {
    cur->off[0] = cur->off[1] = 0;
    for (int d = sp->rank - 1; d >= 0; d--) {
        cur->idx[d] = flat % sp->shape[d];
        flat /= sp->shape[d];
        cur->off[0] += cur->idx[d] * sp->st[0][d];
        cur->off[1] += cur->idx[d] * sp->st[1][d];
    }
}

/// Moves `len` steps along axis d (all later axes are at 0 and idx[d] + len <= shape[d]),
/// carrying into the outer axes.
static void cursor_step(const index_space *sp, cursor *cur, int d, int64_t len) {
    cur->idx[d] += len;
    cur->off[0] += len * sp->st[0][d];
    cur->off[1] += len * sp->st[1][d];
    while (d > 0 && cur->idx[d] == sp->shape[d]) {
        cur->off[0] -= sp->shape[d] * sp->st[0][d];
        cur->off[1] -= sp->shape[d] * sp->st[1][d];
        cur->idx[d] = 0;
        d--;
        cur->idx[d]++;
        cur->off[0] += sp->st[0][d];
        cur->off[1] += sp->st[1][d];
    }
}

/// One run of the chunk walk: `rows` rows of `len` elements, the first at element offsets off0 and
/// off1 of the two operands and at flat (row-major) position pos. Consecutive rows lie one step of
/// the second-innermost axis apart in each operand and `len` apart in flat order; rows > 1 only
/// for whole rows of the innermost axis.
typedef void (*row_run_fn)(const void *ctx, int64_t off0, int64_t off1, int64_t pos, int64_t rows, int64_t len);

/// The chunk walk shared by both kernels: chunks [begin, end) of LOOM_BLOCK elements in row-major
/// order. Whole rows of the innermost axis are handed out as one 2-D run (rows x inner) so short
/// inner axes stay cheap; partial rows at chunk edges are runs of one row. Always inlined with a
/// constant `run`, which is inlined in turn (into each vector clone of the caller).
static LOOM_ALWAYS_INLINE void walk_chunks(const index_space *sp, int64_t total, int64_t begin, int64_t end,
                                           row_run_fn run, const void *ctx) {
    const int last = sp->rank - 1;
    const int64_t inner = sp->shape[last];
    cursor cur;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t pos = blk * LOOM_BLOCK;
        const int64_t stop = loom__min64(pos + LOOM_BLOCK, total);
        cursor_init(sp, pos, &cur);
        while (pos < stop) {
            const int64_t left = stop - pos;
            if (last > 0 && cur.idx[last] == 0 && left >= inner) {
                const int64_t rows = loom__min64(sp->shape[last - 1] - cur.idx[last - 1], left / inner);
                run(ctx, cur.off[0], cur.off[1], pos, rows, inner);
                pos += rows * inner;
                cursor_step(sp, &cur, last - 1, rows);
            } else {
                const int64_t len = loom__min64(inner - cur.idx[last], left);
                run(ctx, cur.off[0], cur.off[1], pos, 1, len);
                pos += len;
                cursor_step(sp, &cur, last, len);
            }
        }
    }
}

/// Element strides of operand o along the innermost axis and between rows (second-innermost).
static LOOM_ALWAYS_INLINE int64_t inner_stride(const index_space *sp, int o) { return sp->st[o][sp->rank - 1]; }
static LOOM_ALWAYS_INLINE int64_t row_stride(const index_space *sp, int o) {
    return sp->rank > 1 ? sp->st[o][sp->rank - 2] : 0;
}

// ---------------------------------------------------------------------------------------------
// Binary

// NaN-propagating max/min, matching torch.maximum/minimum.
#define LOOM_ADD(u, v) ((u) + (v))
#define LOOM_SUB(u, v) ((u) - (v))
#define LOOM_MUL(u, v) ((u) * (v))
#define LOOM_DIV(u, v) ((u) / (v))
#define LOOM_MAX(u, v) (((u) > (v) || (u) != (u)) ? (u) : (v))
#define LOOM_MIN(u, v) (((u) < (v) || (u) != (u)) ? (u) : (v))

// y is contiguous; a/b are contiguous (stride 1), broadcast (stride 0) or strided. y may alias a
// contiguous operand exactly. Broadcast values are loaded once up front.
#define BINARY_LOOPS(OP)                                                                         \
    do {                                                                                         \
        if (sa == 1 && sb == 1) {                                                                \
            LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = OP(a[i], b[i]);                     \
        } else if (sa == 1 && sb == 0) {                                                         \
            const float v = b[0];                                                                \
            LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = OP(a[i], v);                        \
        } else if (sa == 0 && sb == 1) {                                                         \
            const float u = a[0];                                                                \
            LOOM_SIMD for (int64_t i = 0; i < n; i++) y[i] = OP(u, b[i]);                        \
        } else if (sa == 0 && sb == 0) {                                                         \
            const float u = a[0], v = b[0];                                                      \
            const float w = OP(u, v);                                                            \
            for (int64_t i = 0; i < n; i++) y[i] = w;                                            \
        } else {                                                                                 \
            for (int64_t i = 0; i < n; i++) y[i] = OP(a[i * sa], b[i * sb]);                     \
        }                                                                                        \
    } while (0)

static LOOM_ALWAYS_INLINE void binary_1d(int op, const float *a, int64_t sa, const float *b, int64_t sb, float *y,
                      int64_t n) {
    switch (op) {
    case LOOM_B_ADD: BINARY_LOOPS(LOOM_ADD); break;
    case LOOM_B_SUB: BINARY_LOOPS(LOOM_SUB); break;
    case LOOM_B_MUL: BINARY_LOOPS(LOOM_MUL); break;
    case LOOM_B_DIV: BINARY_LOOPS(LOOM_DIV); break;
    case LOOM_B_MAX: BINARY_LOOPS(LOOM_MAX); break;
    case LOOM_B_MIN: BINARY_LOOPS(LOOM_MIN); break;
    default: break;
    }
}

typedef struct {
    int op;
    index_space sp;
    int64_t total;
    const float *a, *b;
    float *y;
} binary_ctx;

static LOOM_ALWAYS_INLINE void binary_rows(const void *vctx, int64_t off_a, int64_t off_b, int64_t pos,
                                           int64_t rows, int64_t len) {
    const binary_ctx *c = (const binary_ctx *)vctx;
    const int64_t sa = inner_stride(&c->sp, 0), sb = inner_stride(&c->sp, 1);
    const int64_t ra = row_stride(&c->sp, 0), rb = row_stride(&c->sp, 1);
    for (int64_t r = 0; r < rows; r++)
        binary_1d(c->op, c->a + off_a + r * ra, sa, c->b + off_b + r * rb, sb, c->y + pos + r * len, len);
}

static LOOM_ALWAYS_INLINE void binary_range_body(void *vctx, int64_t begin, int64_t end) {
    const binary_ctx *c = (const binary_ctx *)vctx;
    walk_chunks(&c->sp, c->total, begin, end, binary_rows, c);
}
LOOM_VECTOR_CLONES(binary_range)

void loom_binary(int op, int rank, const int64_t *shape,
                 const float *a, const int64_t *a_strides,
                 const float *b, const int64_t *b_strides,
                 float *y) {
    if (rank < 0 || rank > LOOM_MAX_RANK) return;
    binary_ctx c;
    const int64_t *strides[2] = {a_strides, b_strides};
    c.total = simplify(&c.sp, rank, shape, 2, strides);
    if (c.total == 0) return;
    c.op = op;
    c.a = a;
    c.b = b;
    c.y = y;
    loom__parallel_for((c.total + LOOM_BLOCK - 1) / LOOM_BLOCK, c.total, LOOM_VECTOR_CLONE(binary_range), &c);
}

// ---------------------------------------------------------------------------------------------
// Strided copy

static inline void copy_1d(const float *x, int64_t sx, float *y, int64_t sy, int64_t n) {
    if (sx == 1 && sy == 1) {
        memmove(y, x, (size_t)n * sizeof(float));
    } else if (sx == 0) {
        const float v = x[0];
        if (sy == 1)
            for (int64_t i = 0; i < n; i++) y[i] = v;
        else
            for (int64_t i = 0; i < n; i++) y[i * sy] = v;
    } else if (sy == 1) {
        for (int64_t i = 0; i < n; i++) y[i] = x[i * sx];
    } else {
        for (int64_t i = 0; i < n; i++) y[i * sy] = x[i * sx];
    }
}

typedef struct {
    index_space sp;  // operand 0: x, operand 1: y
    int64_t total;
    const float *x;
    float *y;
} copy_ctx;

/// 2-D plane kernel for a transpose-like inner pair of axes: y contiguous along the last axis
/// (cols), x contiguous along the second-to-last (rows). Goes through 32x32 tiles staged in a
/// small buffer, so both sides are touched a full cache line at a time (large power-of-two
/// strides would otherwise thrash the L1 sets).
static void copy_transposed_plane(const float *x, int64_t sx_col, float *y, int64_t sy_row,
                                  int64_t rows, int64_t cols) {
    enum { T = 32 };
    float buf[T][T];
    for (int64_t r0 = 0; r0 < rows; r0 += T) {
        const int64_t nr = loom__min64(T, rows - r0);
        for (int64_t c0 = 0; c0 < cols; c0 += T) {
            const int64_t nc = loom__min64(T, cols - c0);
            for (int64_t c = 0; c < nc; c++) {
                const float *restrict xc = x + r0 + (c0 + c) * sx_col;
                for (int64_t r = 0; r < nr; r++) buf[c][r] = xc[r];
            }
            for (int64_t r = 0; r < nr; r++) {
                float *restrict yr = y + (r0 + r) * sy_row + c0;
                for (int64_t c = 0; c < nc; c++) yr[c] = buf[c][r];
            }
        }
    }
}

enum { PLANE_ROWS = 64 };  // rows of a transposed plane per work item

typedef struct {
    const copy_ctx *c;
    int64_t row_blocks;  // work items per plane
} plane_ctx;

static void copy_plane_range(void *vctx, int64_t begin, int64_t end) {
    const plane_ctx *pc = (const plane_ctx *)vctx;
    const index_space *sp = &pc->c->sp;
    const int r = sp->rank;
    const int64_t rows = sp->shape[r - 2], cols = sp->shape[r - 1];
    int64_t idx[LOOM_MAX_RANK];
    for (int64_t item = begin; item < end; item++) {
        // unravel the plane index over the axes [0, r-2)
        int64_t rem = item / pc->row_blocks;
        for (int d = r - 3; d >= 0; d--) {
            idx[d] = rem % sp->shape[d];
            rem /= sp->shape[d];
        }
        idx[r - 2] = (item % pc->row_blocks) * PLANE_ROWS;
        idx[r - 1] = 0;
        int64_t ox = 0, oy = 0;
        for (int d = 0; d < r; d++) {
            ox += idx[d] * sp->st[0][d];
            oy += idx[d] * sp->st[1][d];
        }
        copy_transposed_plane(pc->c->x + ox, sp->st[0][r - 1], pc->c->y + oy, sp->st[1][r - 2],
                              loom__min64(PLANE_ROWS, rows - idx[r - 2]), cols);
    }
}

static LOOM_ALWAYS_INLINE void copy_rows(const void *vctx, int64_t off_x, int64_t off_y, int64_t pos, int64_t rows,
                                         int64_t len) {
    (void)pos;  // y is addressed through its own strides
    const copy_ctx *c = (const copy_ctx *)vctx;
    const int64_t sx = inner_stride(&c->sp, 0), sy = inner_stride(&c->sp, 1);
    const int64_t rx = row_stride(&c->sp, 0), ry = row_stride(&c->sp, 1);
    for (int64_t r = 0; r < rows; r++) copy_1d(c->x + off_x + r * rx, sx, c->y + off_y + r * ry, sy, len);
}

static void copy_range(void *vctx, int64_t begin, int64_t end) {
    const copy_ctx *c = (const copy_ctx *)vctx;
    walk_chunks(&c->sp, c->total, begin, end, copy_rows, c);
}

void loom_strided_copy(int rank, const int64_t *shape,
                       const float *x, int64_t x_offset, const int64_t *x_strides,
                       float *y, int64_t y_offset, const int64_t *y_strides) {
    if (rank < 0 || rank > LOOM_MAX_RANK) return;
    copy_ctx c;
    const int64_t *strides[2] = {x_strides, y_strides};
    c.total = simplify(&c.sp, rank, shape, 2, strides);
    if (c.total == 0) return;
    c.x = x + x_offset;
    c.y = y + y_offset;
    const index_space *sp = &c.sp;
    const int r = sp->rank;
    if (r >= 2 && sp->st[1][r - 1] == 1 && sp->st[0][r - 2] == 1 && sp->st[0][r - 1] != 1 &&
        sp->shape[r - 1] >= 8 && sp->shape[r - 2] >= 8) {
        // Transpose of the two innermost axes: tile it.
        const int64_t planes = c.total / (sp->shape[r - 1] * sp->shape[r - 2]);
        plane_ctx pc = {&c, (sp->shape[r - 2] + PLANE_ROWS - 1) / PLANE_ROWS};
        loom__parallel_for(planes * pc.row_blocks, c.total, copy_plane_range, &pc);
        return;
    }
    loom__parallel_for((c.total + LOOM_BLOCK - 1) / LOOM_BLOCK, c.total, copy_range, &c);
}

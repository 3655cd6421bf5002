// Loom's CPU kernels: vectorised, OpenMP-parallel loops over float32 buffers.
//
// Determinism rule: every output element is computed by exactly one thread, in a fixed order,
// so results are bit-identical at any thread count. Parallelise over independent outputs
// (rows, elements); never split one reduction across threads.
#ifndef LOOM_KERNELS_H
#define LOOM_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Team size used by every kernel below (default 1). OpenBLAS threads are managed separately.
void loom_set_num_threads(int n);
int loom_get_num_threads(void);

/// Called for one entry of `loom_parallel_entries` on thread `worker` (0 ≤ worker < workers).
typedef void (*loom_entry_fn)(void *ctx, int worker, int64_t index);
/// Runs fn for every index below `count` on an OpenMP team of `workers` threads, indices dealt
/// round-robin (worker w takes w, w + workers, ...). The caller sets Loom's own team size to 1
/// around it if fn runs Loom kernels, so they do not nest parallel regions.
void loom_parallel_entries(int64_t count, int workers, loom_entry_fn fn, void *ctx);

/// Unary elementwise operations, y[i] = f(x[i]); x and y may alias.
/// EXP, TANH, SILU, GELU_TANH and SIGMOID use vectorised in-house exp (~1 ulp) and tanh (~2 ulp);
/// LOG, SIN and COS call libm. SIGMOID/SILU/GELU stay finite (no NaN) for any finite x.
typedef enum {
    LOOM_U_NEG = 0,
    LOOM_U_EXP = 1,
    LOOM_U_LOG = 2,
    LOOM_U_SQRT = 3,
    LOOM_U_RSQRT = 4,
    LOOM_U_TANH = 5,
    LOOM_U_SIN = 6,
    LOOM_U_COS = 7,
    LOOM_U_SILU = 8,      // x * sigmoid(x)
    LOOM_U_GELU_TANH = 9, // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    LOOM_U_SIGMOID = 10,
    LOOM_U_SQUARE = 11,
    LOOM_U_ABS = 12,
    LOOM_U_RECIP = 13,
    LOOM_U_RELU = 14,
    LOOM_U_SIGN = 15,
} loom_unary_op;

void loom_unary(int op, const float *x, float *y, int64_t n);

/// y[i] = scale * x[i] + shift; x and y may alias.
void loom_affine(const float *x, float *y, int64_t n, float scale, float shift);

/// y[i] = value.
void loom_fill(float *y, int64_t n, float value);

/// Binary elementwise operations with broadcasting.
typedef enum {
    LOOM_B_ADD = 0,
    LOOM_B_SUB = 1,
    LOOM_B_MUL = 2,
    LOOM_B_DIV = 3,
    LOOM_B_MAX = 4,
    LOOM_B_MIN = 5,
} loom_binary_op;

/// y (contiguous, `shape`, rank <= 8) = a op b, where a and b are read through element strides
/// (0 on broadcast axes). rank 0 means a single element.
/// MAX/MIN propagate NaN (like torch.maximum/minimum). y may alias a contiguous operand exactly.
void loom_binary(int op, int rank, const int64_t *shape,
                 const float *a, const int64_t *a_strides,
                 const float *b, const int64_t *b_strides,
                 float *y);

/// General strided copy over an index space `shape` (rank <= 8):
/// y[y_offset + sum_d i_d*y_strides[d]] = x[x_offset + sum_d i_d*x_strides[d]].
/// Covers permute, slice, concat (writing into a slab of y), broadcast and (un)patchify.
void loom_strided_copy(int rank, const int64_t *shape,
                       const float *x, int64_t x_offset, const int64_t *x_strides,
                       float *y, int64_t y_offset, const int64_t *y_strides);

/// Reductions. x has shape `in_shape` (rank <= 8, contiguous); axes with reduce_mask[d] != 0
/// are reduced; y is contiguous with the reduced axes removed (remaining axes in order).
/// Sums accumulate in double. MAX propagates NaN. Reducing an empty axis gives 0 (sum),
/// NaN (mean) or -inf (max).
typedef enum {
    LOOM_R_SUM = 0,
    LOOM_R_MEAN = 1,
    LOOM_R_MAX = 2,
} loom_reduce_op;

void loom_reduce(int op, int rank, const int64_t *in_shape, const int32_t *reduce_mask,
                 const float *x, float *y);

/// Row-wise softmax over the last axis: x, y are [rows, cols]; may alias.
void loom_softmax_rows(const float *x, float *y, int64_t rows, int64_t cols);
/// LayerNorm (rms = 0) or RMSNorm (rms = 1, without its weight) backward over rows of `cols`:
/// dx = r·(g − mean(g) − y·mean(g·y)) (RMS: without the mean(g) term), with the statistics
/// r = rstd and y = the normalised x recomputed from x; sums accumulate in double.
void loom_norm_backward_rows(const float *x, const float *g, float *dx, int64_t rows, int64_t cols, float eps, int rms);
/// One key block of an online (flash-style) softmax over `rows` query rows: s [rows, cols] holds
/// the block's scaled scores and is overwritten with exp(s − m_new); per row the running max `m` and
/// sum `l` are updated and the partial output row y[r, 0..<e] (rows `ldy` apart) is rescaled by
/// exp(m_old − m_new). `first` starts the rows (m = −inf, l = 0, y not read).
void loom_online_softmax_block(float *s, int64_t rows, int64_t cols, float *m, float *l, float *y,
                               int64_t ldy, int64_t e, int first);
/// Softmax backward in place: g[r, j] = p[r, j]·(g[r, j] − Σₖ g[r, k]·p[r, k]) · scale, where p is
/// the softmax output and g arrives as the gradient of p; the row sum accumulates in double.
void loom_softmax_backward_rows(const float *p, float *g, int64_t rows, int64_t cols, float scale);
/// Blocked attention backward, per key block (one head, one thread): s [rows, cols] holds the block's
/// scaled scores and becomes P = exp(s − m[r]) / l[r] with the final row statistics of the whole row.
void loom_softmax_apply_stats(float *s, int64_t rows, int64_t cols, const float *m, const float *l);
/// dsum[r] += Σⱼ p[r, j]·g[r, j] (double accumulation), the row sums of dP ⊙ P gathered block by block.
void loom_rows_dot_accumulate(const float *p, const float *g, int64_t rows, int64_t cols, double *dsum);
/// g ← p ⊙ (g − dsum[r]) · scale: the softmax backward of one key block given the whole row's sums.
void loom_softmax_backward_block(const float *p, float *g, int64_t rows, int64_t cols, const double *dsum, float scale);

/// Row-wise LayerNorm without affine: y = (x - mean) / sqrt(var + eps), biased variance.
void loom_layernorm_rows(const float *x, float *y, int64_t rows, int64_t cols, float eps);

/// Row-wise RMSNorm without weight: y = x / sqrt(mean(x^2) + eps).
void loom_rmsnorm_rows(const float *x, float *y, int64_t rows, int64_t cols, float eps);

/// Embedding lookup: y[i, :] = table[idx[i], :] for i < n, table is [table_rows, cols].
/// Returns -1 on success, else the position i of the first index outside [0, table_rows);
/// all indices are checked before anything is written, so y is untouched on failure.
int64_t loom_gather_rows(const float *table, int64_t table_rows, int64_t cols,
                         const int64_t *idx, int64_t n, float *y);

/// Pairwise rotation over the last axis (n even): (a, b) -> (-b, a) for each adjacent pair.
/// x and y may alias. (For odd n the last element is copied unchanged.)
void loom_rotate_pairs(const float *x, float *y, int64_t n);

#ifdef __cplusplus
}
#endif

/// Σᵢ Σⱼ x_i[j]² over `segments` arrays, segment i holding start[i + 1] − start[i] elements
/// (start has segments + 1 entries, start[0] = 0); accumulated in double, in a fixed order of
/// blocks whatever the team size.
float loom_sum_squares(const float *const *x, const int64_t *start, int64_t segments);

/// Scalars and switches of one AdamW + EMA step (see loom_adamw).
typedef struct {
    float beta1, beta2, eps;
    float step;          // lr / (1 − β₁ᵗ)
    float sqrt_bias2;    // √(1 − β₂ᵗ)
    float coef;          // gradient clipping factor, used when clip
    float decay_factor;  // 1 − lr·wd, used when decay
    float ema_decay, ema_keep;  // d and 1 − d, used when ema
    int clip, decay, ema;
} loom_adamw_scalars;

/// AdamW (bias corrected, decoupled weight decay) and the EMA over `segments` parameters in one
/// pass: segment i has start[i + 1] − start[i] elements, gradient g[i], parameter p[i], moments
/// m[i], v[i] and EMA e[i] (e unused without ema). The new state goes to out = [p | m | v | e],
/// each part start[segments] elements long, segment i at offset start[i]; out may be the state
/// itself laid out that way (an in-place update).
void loom_adamw(const float *const *g, const float *const *p, const float *const *m, const float *const *v,
                const float *const *e, const int64_t *start, int64_t segments, float *out,
                loom_adamw_scalars scalars);

/// Floats of scratch loom_sgemm needs for an [m, n] result over depth k (packed op(B) and one
/// packed block of op(A), plus alignment slack).
int64_t loom_sgemm_scratch_floats(int64_t m, int64_t n, int64_t k);

/// Single-threaded row-major C[m, n] = alpha·op(A)·op(B) (+ C when `accumulate`) (+ bias[n] when not
/// NULL), op(A) [m, k] (A stored [k, m] when trans_a), op(B) [k, n] (B stored [n, k] when trans_b).
/// `scratch` holds loom_sgemm_scratch_floats(m, n, k) floats. Each element of C is computed the same
/// way whatever rows or columns a call covers, so slabs of C on different threads give the bits of
/// one call.
void loom_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                const float *b, int64_t ldb, int accumulate, float *c, int64_t ldc, const float *bias, float *scratch);

/// Columns per packed panel of op(B) (offsets into a packed B must be multiples of this).
int64_t loom_sgemm_panel_width(void);
/// Floats of a whole packed op(B) [k, n].
int64_t loom_sgemm_packed_b_floats(int64_t n, int64_t k);
/// Packs op(B) [k, n] (B stored [n, k] when trans_b) for loom_sgemm_prepacked: panel p (columns
/// p·w..<p·w+w, w = loom_sgemm_panel_width()) at packed + p·w·k.
void loom_sgemm_pack_b(int trans_b, int64_t n, int64_t k, const float *b, int64_t ldb, float *packed);
/// loom_sgemm with op(B) already packed (columns from a panel boundary): the same bits, without
/// packing B on every call. `scratch` holds loom_sgemm_scratch_floats(m, n, k) floats.
void loom_sgemm_prepacked(int trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                          const float *packed_b, int accumulate, float *c, int64_t ldc, const float *bias,
                          float *scratch);

#endif

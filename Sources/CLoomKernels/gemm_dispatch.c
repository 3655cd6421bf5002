// Every GEMM of a launch goes through loom_gemm: the implementation was chosen for this CPU when
// the plan was loaded (loom_gemm_configure), the operand precision by the launch
// (loom_gemm_set_precision). bf16 launches round both operands to bf16 (nearest, ties to even) and
// accumulate in fp32: on oneDNN's bf16 kernels where the CPU has bf16 instructions, otherwise with
// the fp32 kernel on the rounded values, which is the same arithmetic.
#include <stdint.h>
#include "loom_internal.h"
#include "loom_gemm.h"
#include "loom_onednn.h"

static loom_gemm_provider f32_provider = LOOM_GEMM_OWN;
static loom_bf16_mode bf16_mode = LOOM_BF16_EMULATED;
static loom_precision launch_precision = LOOM_PRECISION_F32;
static int prepare_only = 0;

void loom_gemm_configure(loom_gemm_provider provider, loom_bf16_mode mode) {
    f32_provider = provider;
    bf16_mode = mode;
}

void loom_gemm_set_precision(loom_precision precision) { launch_precision = precision; }
loom_precision loom_gemm_get_precision(void) { return launch_precision; }
void loom_gemm_set_prepare_only(int on) { prepare_only = on; }

int loom_gemm_uses_own_packing(void) {
    return f32_provider == LOOM_GEMM_OWN && launch_precision == LOOM_PRECISION_F32;
}

int64_t loom_gemm_scratch_floats(int64_t m, int64_t n, int64_t k) {
    // Loom's packing buffers, plus (bf16 launches) rounded copies of both operands (fp32 copies:
    // the emulated path; the bf16 path needs half) and alignment slack.
    int64_t own = loom_sgemm_scratch_floats(m, n, k);
    return launch_precision == LOOM_PRECISION_F32 ? own : own + m * k + n * k + 64;
}

static inline uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/// The upper 16 bits of x rounded to nearest, ties to even; NaN stays a quiet NaN.
static LOOM_ALWAYS_INLINE uint16_t bf16_bits(float x) {
    uint32_t u = bits_of(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// Matrices (rows × cols, leading dimension ld, written contiguously) converted to bf16 bit
// patterns, or rounded to bf16 values kept as fp32; both compiled for AVX2 and AVX-512 (integer
// arithmetic: the clones agree bit for bit). The row loop sits inside the clone and each row is
// vectorised 16 wide without a wider unroll: a head's 32-column rows then run at vector width
// instead of paying a call and a narrower tail per row. A contiguous matrix is one long row.
static LOOM_ALWAYS_INLINE void convert_matrix_body(const float *restrict src, int64_t rows, int64_t cols,
                                                   int64_t ld, uint16_t *restrict dst) {
    if (ld == cols) { cols *= rows; rows = 1; }
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + r * ld;
        uint16_t *y = dst + r * cols;
#pragma clang loop vectorize_width(16) interleave_count(1)
        for (int64_t i = 0; i < cols; i++) y[i] = bf16_bits(x[i]);
    }
}
static LOOM_ALWAYS_INLINE void round_matrix_body(const float *restrict src, int64_t rows, int64_t cols,
                                                 int64_t ld, float *restrict dst) {
    if (ld == cols) { cols *= rows; rows = 1; }
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + r * ld;
        float *y = dst + r * cols;
#pragma clang loop vectorize_width(16) interleave_count(1)
        for (int64_t i = 0; i < cols; i++) y[i] = loom__f32_from_bits((uint32_t)bf16_bits(x[i]) << 16);
    }
}
static void convert_matrix_avx2(const float *s, int64_t rows, int64_t cols, int64_t ld, uint16_t *d) {
    convert_matrix_body(s, rows, cols, ld, d);
}
LOOM_AVX512_TARGET static void convert_matrix_avx512(const float *s, int64_t rows, int64_t cols, int64_t ld,
                                                     uint16_t *d) {
    convert_matrix_body(s, rows, cols, ld, d);
}
static void round_matrix_avx2(const float *s, int64_t rows, int64_t cols, int64_t ld, float *d) {
    round_matrix_body(s, rows, cols, ld, d);
}
LOOM_AVX512_TARGET static void round_matrix_avx512(const float *s, int64_t rows, int64_t cols, int64_t ld, float *d) {
    round_matrix_body(s, rows, cols, ld, d);
}

/// rows × cols of a row-major matrix with leading dimension ld, as bf16 bit patterns contiguous in dst.
static void convert_matrix(const float *src, int64_t rows, int64_t cols, int64_t ld, uint16_t *dst) {
    if (loom__vector_avx512) convert_matrix_avx512(src, rows, cols, ld, dst);
    else convert_matrix_avx2(src, rows, cols, ld, dst);
}

/// The same rounded to bf16 values kept as fp32.
static void round_matrix(const float *src, int64_t rows, int64_t cols, int64_t ld, float *dst) {
    if (loom__vector_avx512) round_matrix_avx512(src, rows, cols, ld, dst);
    else round_matrix_avx2(src, rows, cols, ld, dst);
}

static void convert_row(const float *x, uint16_t *y, int64_t n) { convert_matrix(x, 1, n, n, y); }

void loom_round_to_bf16(const float *x, float *y, int64_t n) { round_matrix(x, 1, n, n, y); }

void loom_convert_to_bf16(const float *x, uint16_t *y, int64_t n) { convert_row(x, y, n); }

static float *align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/// fp32 GEMM on the configured provider (Loom's own when oneDNN has no fast kernel for the shape).
static void gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, int accumulate, float *c, int64_t ldc,
                     const float *bias, float *scratch) {
    if (f32_provider == LOOM_GEMM_ONEDNN && k > 0) {
        // oneDNN scales the bias with alpha; Loom's contract adds it unscaled: keep that case here.
        int onednn_bias = bias && alpha == 1.0f;
        loom_onednn_gemm *g = loom_onednn_gemm_get(trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, accumulate,
                                                   onednn_bias, 0);
        if (prepare_only) return;
        if (loom_onednn_gemm_usable(g) && (!bias || onednn_bias) &&
            loom_onednn_gemm_run(g, a, b, c, onednn_bias ? bias : NULL))
            return;
    }
    if (prepare_only) return;
    loom_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, accumulate, c, ldc, bias, scratch);
}

void loom_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, int accumulate, float *c, int64_t ldc, const float *bias, float *scratch) {
    if (m <= 0 || n <= 0) return;
    if (launch_precision == LOOM_PRECISION_F32 || k <= 0) {
        gemm_f32(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, accumulate, c, ldc, bias, scratch);
        return;
    }
    // Stored shapes of the operands: A is [m, k] or, transposed, [k, m]; B is [k, n] or [n, k].
    int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    float *copies = align64(scratch + loom_sgemm_scratch_floats(m, n, k));
    if (bf16_mode == LOOM_BF16_ONEDNN) {
        int onednn_bias = bias && alpha == 1.0f;
        loom_onednn_gemm *g = loom_onednn_gemm_get(trans_a, trans_b, m, n, k, a_cols, b_cols, ldc, alpha, accumulate,
                                                   onednn_bias, 1);
        if (prepare_only) return;
        if (loom_onednn_gemm_usable(g) && (!bias || onednn_bias)) {
            uint16_t *a16 = (uint16_t *)copies, *b16 = a16 + ((a_rows * a_cols + 31) & ~(int64_t)31);
            convert_matrix(a, a_rows, a_cols, lda, a16);
            convert_matrix(b, b_rows, b_cols, ldb, b16);
            if (loom_onednn_gemm_run(g, a16, b16, c, onednn_bias ? bias : NULL)) return;
        }
    }
    if (prepare_only) return;
    float *a32 = copies, *b32 = align64(copies + a_rows * a_cols);
    round_matrix(a, a_rows, a_cols, lda, a32);
    round_matrix(b, b_rows, b_cols, ldb, b32);
    gemm_f32(trans_a, trans_b, m, n, k, alpha, a32, a_cols, b32, b_cols, accumulate, c, ldc, bias, scratch);
}

void loom_gemm_bf16_weights(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const uint16_t *b16,
                            float *c, int64_t ldc, const float *bias, float *scratch) {
    if (m <= 0 || n <= 0) return;
    float *copies = align64(scratch + loom_sgemm_scratch_floats(m, n, k));
    if (bf16_mode == LOOM_BF16_ONEDNN && k > 0) {
        loom_onednn_gemm *g = loom_onednn_gemm_get(0, 1, m, n, k, k, k, ldc, 1.0f, 0, bias != NULL, 1);
        if (prepare_only) return;
        if (loom_onednn_gemm_usable(g)) {
            uint16_t *a16 = (uint16_t *)copies;
            convert_matrix(a, m, k, lda, a16);
            if (loom_onednn_gemm_run(g, a16, b16, c, bias)) return;
        }
    }
    if (prepare_only) return;
    // The weights' bf16 values widened back to fp32 are exact; A is rounded as in loom_gemm.
    float *a32 = copies, *b32 = align64(copies + m * k);
    round_matrix(a, m, k, lda, a32);
    for (int64_t i = 0; i < n * k; i++) b32[i] = loom__f32_from_bits((uint32_t)b16[i] << 16);
    gemm_f32(0, 1, m, n, k, 1.0f, a32, k, b32, k, 0, c, ldc, bias, scratch);
}

struct convert_rows_ctx { const float *x; int64_t lda, k; uint16_t *out; };

static void convert_rows(void *ctx, int64_t begin, int64_t end) {
    const struct convert_rows_ctx *c = ctx;
    convert_matrix(c->x + begin * c->lda, end - begin, c->k, c->lda, c->out + begin * c->k);
}

int loom_linear_prepared(const loom_onednn_linear *l, int64_t m, int64_t k, const float *x, int64_t lda,
                         const void *packed, float *y, const float *bias, uint16_t *x16) {
    if (prepare_only) return 1;
    const void *src = x;
    if (loom_onednn_linear_bf16(l)) {
        struct convert_rows_ctx ctx = {x, lda, k, x16};
        loom__parallel_for(m, m * k, convert_rows, &ctx);
        src = x16;
    }
    return loom_onednn_linear_run(l, src, packed, y, bias);
}

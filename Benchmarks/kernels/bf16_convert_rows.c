// The bf16 rounding of GEMM operands (round to nearest, ties to even, NaN kept quiet) on the shapes
// of the study's training step, in the two loop structures Loom has used, one thread:
//   per row:   a dispatching call per row, each row vectorised on its own (before c7362be's successor);
//   in clone:  the row loop inside the AVX-512 clone, each row 16 wide (gemm_dispatch.c today).
// Both produce the same bits (checked here). Shapes: a head's 64 × 32 slice of a fused QKV buffer
// [64, 384], and a contiguous 2048 × 512 activation gradient.
//
//   clang -O2 Benchmarks/kernels/bf16_convert_rows.c -o .build/bf16-convert-rows
//   .build/bf16-convert-rows
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INLINE inline __attribute__((always_inline))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static INLINE uint16_t bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// Per row: the shape of the old code (a dispatching call per row).
static volatile int use_avx512 = 1;
__attribute__((noinline)) AVX512 static void row_avx512(const float *restrict x, uint16_t *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = bf16_bits(x[i]);
}
__attribute__((noinline)) static void row_avx2(const float *restrict x, uint16_t *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = bf16_bits(x[i]);
}
__attribute__((noinline)) static void row(const float *x, uint16_t *y, int64_t n) {
    if (use_avx512) row_avx512(x, y, n);
    else row_avx2(x, y, n);
}
static void per_row(const float *src, int64_t rows, int64_t cols, int64_t ld, uint16_t *dst) {
    for (int64_t r = 0; r < rows; r++) row(src + r * ld, dst + r * cols, cols);
}

// In clone: the shape of the current code.
__attribute__((noinline)) AVX512 static void in_clone(const float *restrict src, int64_t rows, int64_t cols, int64_t ld,
                                                      uint16_t *restrict dst) {
    if (ld == cols) { cols *= rows; rows = 1; }
    for (int64_t r = 0; r < rows; r++) {
        const float *x = src + r * ld;
        uint16_t *y = dst + r * cols;
#pragma clang loop vectorize_width(16) interleave_count(1)
        for (int64_t i = 0; i < cols; i++) y[i] = bf16_bits(x[i]);
    }
}

static void measure(const char *name, int64_t rows, int64_t cols, int64_t ld, int reps) {
    float *src = malloc(sizeof(float) * rows * ld);
    uint16_t *a = malloc(2 * rows * cols), *b = malloc(2 * rows * cols);
    srand(1);
    for (int64_t i = 0; i < rows * ld; i++) src[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    double best_old = 1e9, best_new = 1e9;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (int k = 0; k < reps; k++) per_row(src, rows, cols, ld, a);
        double t1 = now();
        for (int k = 0; k < reps; k++) in_clone(src, rows, cols, ld, b);
        double t2 = now();
        if (t1 - t0 < best_old) best_old = t1 - t0;
        if (t2 - t1 < best_new) best_new = t2 - t1;
    }
    printf("%-34s per row %9.3f us   in clone %9.3f us   same bits %s\n", name, best_old / reps * 1e6,
           best_new / reps * 1e6, memcmp(a, b, 2 * rows * cols) == 0 ? "yes" : "NO");
    free(src); free(a); free(b);
}

int main(void) {
    measure("64 x 32 slice of [64, 384]", 64, 32, 384, 100000);
    measure("2048 x 512 contiguous", 2048, 512, 512, 200);
    return 0;
}

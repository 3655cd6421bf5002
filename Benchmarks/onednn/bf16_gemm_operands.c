// Where the time of a bf16 GEMM goes when its operands arrive in fp32, as in Loom's training
// steps: rounding both operands to bf16, then oneDNN's bf16 matmul, on one thread. For the weight
// gradients (dW = gᵀ·x, A read transposed) it also times the same matmul on a pre-transposed A,
// and it reports which kernel oneDNN picks for an fp32 matmul allowed to compute in bf16
// (fpmath mode), the way to let oneDNN round inside its own operand copies.
//
//   clang -O2 Benchmarks/onednn/bf16_gemm_operands.c -o .build/bf16-gemm-operands -ldnnl
//   OMP_NUM_THREADS=1 .build/bf16-gemm-operands
//
// Conversions: Loom's rounding (nearest, ties to even, NaN kept quiet) compiled for AVX-512, and
// the AVX512-BF16 instruction vcvtneps2bf16 where the CPU has it (it also flushes fp32 subnormal
// inputs to zero, so it is not the same function on those). Times are the best of 5 rounds. clang
// (the Swift toolchain's, the compiler of Loom's own kernels) vectorises the rounding loop as Loom's
// build does.
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline uint16_t bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) static void convert_rounding(const float *restrict x,
                                                                                          uint16_t *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = bf16_bits(x[i]);
}

__attribute__((target("avx512f,avx512bf16,avx512vl"))) static void convert_native(const float *restrict x,
                                                                                 uint16_t *restrict y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh r = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
        _mm256_storeu_si256((__m256i *)(y + i), (__m256i)r);
    }
    for (; i < n; i++) y[i] = bf16_bits(x[i]);
}

static dnnl_engine_t engine;
static dnnl_stream_t stream;

/// C [m, n] = op(A)·B with A [m, k] stored transposed ([k, m]) when `trans_a`, B [k, n].
typedef struct {
    dnnl_primitive_t primitive;
    dnnl_memory_t a, b, c;
    const char *impl;
} matmul;

static int make(matmul *mm, int64_t m, int64_t n, int64_t k, int trans_a, dnnl_data_type_t type, int fpmath_bf16) {
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_dims_t a_dims = {m, k}, a_strides = {trans_a ? 1 : k, trans_a ? m : 1};
    dnnl_dims_t b_dims = {k, n}, b_strides = {n, 1}, c_dims = {m, n}, c_strides = {n, 1};
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd;
    if (dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, type, a_strides) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&b_md, 2, b_dims, type, b_strides) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&c_md, 2, c_dims, dnnl_f32, c_strides) != dnnl_success ||
        dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md) != dnnl_success ||
        dnnl_primitive_attr_create(&attr) != dnnl_success)
        return 0;
    if (fpmath_bf16) dnnl_primitive_attr_set_fpmath_mode(attr, dnnl_fpmath_mode_bf16);
    int ok = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL) == dnnl_success;
    dnnl_primitive_attr_destroy(attr);
    if (!ok) return 0;
    const char *impl = "";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    mm->impl = strdup(impl ? impl : "");
    ok = dnnl_primitive_create(&mm->primitive, pd) == dnnl_success &&
         dnnl_memory_create(&mm->a, &a_md, engine, NULL) == dnnl_success &&
         dnnl_memory_create(&mm->b, &b_md, engine, NULL) == dnnl_success &&
         dnnl_memory_create(&mm->c, &c_md, engine, NULL) == dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    return ok;
}

static void run(const matmul *mm, void *a, void *b, float *c) {
    dnnl_memory_set_data_handle(mm->a, a);
    dnnl_memory_set_data_handle(mm->b, b);
    dnnl_memory_set_data_handle(mm->c, c);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, mm->a}, {DNNL_ARG_WEIGHTS, mm->b}, {DNNL_ARG_DST, mm->c}};
    dnnl_primitive_execute(mm->primitive, stream, 3, args);
}

typedef enum { CONVERT_ROUNDING, CONVERT_NATIVE, GEMM_AS_STORED, GEMM_PRETRANSPOSED, KINDS } part;

int main(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "oneDNN: no CPU engine\n");
        return 1;
    }
    __builtin_cpu_init();
    int native = __builtin_cpu_supports("avx512bf16");
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "this benchmark times the AVX-512 conversions; this CPU has no AVX-512\n");
        return 1;
    }
    // m, n, k, A transposed: the study's SiT (hidden 128, 64 tokens, batch 32) and the S/2 model
    // (hidden 384, 256 tokens, batch 8): weight gradients of qkv, proj, fc1, fc2, then two forward GEMMs.
    const int64_t shapes[][4] = {{384, 128, 2048, 1},  {128, 128, 2048, 1},  {512, 128, 2048, 1}, {128, 512, 2048, 1},
                                 {1152, 384, 2048, 1}, {384, 384, 2048, 1},  {1536, 384, 2048, 1}, {384, 1536, 2048, 1},
                                 {2048, 384, 128, 0},  {2048, 1536, 384, 0}};
    printf("%-22s %9s %9s %9s %9s %9s  %s\n", "m × n × k (A)", "round ms", "vcvt ms", "gemm ms", "pre-T ms",
           "conv %", "fp32 matmul with fpmath bf16");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        int trans_a = (int)shapes[s][3];
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
        uint16_t *a16 = aligned_alloc(64, (size_t)(2 * m * k + 63) & ~(size_t)63);
        uint16_t *b16 = aligned_alloc(64, (size_t)(2 * k * n + 63) & ~(size_t)63);
        if (!a || !b || !c || !a16 || !b16) return 1;
        for (int64_t i = 0; i < m * k; i++) a[i] = (float)((double)rand() / RAND_MAX) - 0.5f;
        for (int64_t i = 0; i < k * n; i++) b[i] = (float)((double)rand() / RAND_MAX) - 0.5f;
        matmul stored = {0}, pretransposed = {0}, fpmath = {0};
        if (!make(&stored, m, n, k, trans_a, dnnl_bf16, 0) || !make(&pretransposed, m, n, k, 0, dnnl_bf16, 0)) {
            fprintf(stderr, "oneDNN: no bf16 matmul for %lld × %lld × %lld\n", (long long)m, (long long)n, (long long)k);
            return 1;
        }
        int have_fpmath = make(&fpmath, m, n, k, trans_a, dnnl_f32, 1);
        double best[KINDS];
        for (int p = 0; p < KINDS; p++) best[p] = 1e30;
        int repeats = 20;
        for (int round = 0; round < 5; round++) {
            for (int p = 0; p < KINDS; p++) {
                if (p == CONVERT_NATIVE && !native) continue;
                double start = now();
                for (int r = 0; r < repeats; r++) {
                    switch (p) {
                    case CONVERT_ROUNDING: convert_rounding(a, a16, m * k); convert_rounding(b, b16, k * n); break;
                    case CONVERT_NATIVE: convert_native(a, a16, m * k); convert_native(b, b16, k * n); break;
                    case GEMM_AS_STORED: run(&stored, a16, b16, c); break;
                    default: run(&pretransposed, a16, b16, c); break;
                    }
                }
                double t = (now() - start) / repeats * 1e3;
                if (t < best[p]) best[p] = t;
            }
        }
        char label[64];
        snprintf(label, sizeof label, "%lld × %lld × %lld (%s)", (long long)m, (long long)n, (long long)k, trans_a ? "Aᵀ" : "A");
        char vcvt[16] = "–", pre[16] = "–";
        if (native) snprintf(vcvt, sizeof vcvt, "%.3f", best[CONVERT_NATIVE]);
        if (trans_a) snprintf(pre, sizeof pre, "%.3f", best[GEMM_PRETRANSPOSED]);
        double share = 100 * best[CONVERT_ROUNDING] / (best[CONVERT_ROUNDING] + best[GEMM_AS_STORED]);
        printf("%-24s %9.3f %9s %9.3f %9s %8.0f%%  %s\n", label, best[CONVERT_ROUNDING], vcvt, best[GEMM_AS_STORED], pre,
               share, have_fpmath ? fpmath.impl : "(none)");
        free(a), free(b), free(c), free(a16), free(b16);
    }
    return 0;
}

// GEMM dispatch: which implementation runs each GEMM on this CPU, in which precision.
#ifndef LOOM_GEMM_H
#define LOOM_GEMM_H

#include <stdint.h>

/// Instruction-set features of the CPU that matter to the GEMM, as the OS lets them be used
/// (CPUID plus XGETBV: the OS must save the AVX-512 and AMX register state).
typedef struct {
    int avx2_fma;
    int avx512f;      ///< AVX-512 F, BW, VL and DQ (oneDNN's avx512_core)
    int avx512_bf16;  ///< VDPBF16PS
    int amx_bf16;     ///< AMX tiles with bf16 (the OS permission is requested separately)
} loom_cpu_features;

loom_cpu_features loom_detect_cpu(void);

/// Runs the elementwise, row and bf16-conversion kernels on their AVX-512 clones (1) or their
/// AVX2 ones (0); a request for AVX-512 on a CPU without it is ignored. Returns the setting in force.
int loom_set_vector_isa(int avx512);
/// 1 while the AVX-512 clones run.
int loom_get_vector_isa(void);

/// Asks Linux for the AMX tile-data state (arch_prctl ARCH_REQ_XCOMP_PERM); 1 when granted.
int loom_request_amx_permission(void);

/// The implementation of fp32 GEMMs.
typedef enum { LOOM_GEMM_OWN = 0, LOOM_GEMM_ONEDNN = 1 } loom_gemm_provider;
/// How bf16 GEMMs run: oneDNN on bf16 instructions, or fp32 arithmetic on operands rounded to bf16.
typedef enum { LOOM_BF16_EMULATED = 0, LOOM_BF16_ONEDNN = 1 } loom_bf16_mode;
/// Operand precision of a GEMM launch (accumulation is always fp32).
typedef enum { LOOM_PRECISION_F32 = 0, LOOM_PRECISION_BF16 = 1 } loom_precision;

/// Caps oneDNN's instruction set (0 avx2, 1 avx512 with bf16, 2 amx); must precede any oneDNN
/// primitive. Returns 1 when oneDNN took the cap.
int loom_onednn_cap_isa(int level);

/// Process-wide choice made when a plan is loaded.
void loom_gemm_configure(loom_gemm_provider f32_provider, loom_bf16_mode bf16_mode);
/// Operand precision of the launch that runs next (set by the executor before each launch).
void loom_gemm_set_precision(loom_precision precision);
loom_precision loom_gemm_get_precision(void);
/// 1 when the current configuration runs fp32 GEMMs on Loom's own packed kernel, so a B packed by
/// loom_sgemm_pack_b may be used.
int loom_gemm_uses_own_packing(void);

/// Floats of scratch loom_gemm needs for an [m, n] result over depth k in the launch's precision.
int64_t loom_gemm_scratch_floats(int64_t m, int64_t n, int64_t k);

/// Single-threaded C[m, n] = alpha·op(A)·op(B) (+ C when accumulate) (+ bias[n]) in the launch's
/// precision, on the configured implementation; same operand conventions as loom_sgemm.
/// Whatever runs, it never spreads over more than the calling thread.
void loom_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, int accumulate, float *c, int64_t ldc, const float *bias, float *scratch);

/// loom_gemm in bf16 with B [n, k] (row-major, leading dimension k: a linear layer's weight) already
/// converted to bf16 bit patterns by loom_convert_to_bf16; only A is rounded per call.
void loom_gemm_bf16_weights(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const uint16_t *b16,
                            float *c, int64_t ldc, const float *bias, float *scratch);

/// n floats as bf16 bit patterns (nearest, ties to even).
void loom_convert_to_bf16(const float *x, uint16_t *y, int64_t n);

/// Rounds n floats to the nearest bf16 value (ties to even), kept as fp32.
void loom_round_to_bf16(const float *x, float *y, int64_t n);

/// Name of the oneDNN implementation for one GEMM shape in the given precision ("" when oneDNN
/// has none), e.g. "brg:avx512_core_bf16"; creates (and caches) the primitive.
const char *loom_onednn_gemm_impl(int64_t m, int64_t n, int64_t k, int bf16);

/// While set, loom_gemm only creates the oneDNN primitive of each call and computes nothing
/// (plan load warms every shape before the first step).
void loom_gemm_set_prepare_only(int on);

/// A whole linear layer y[m, n] = x[m, k]·Wᵀ + bias (W [n, k]) on oneDNN, for forward plans: the
/// weight is reordered once (loom_onednn_linear_pack) into the layout the primitive prefers (bf16 when
/// `bf16`: x is then passed as bf16 bit patterns, row-major [m, k]), and the primitive runs over an
/// OpenMP team of `threads` (oneDNN splits it; the same LLVM runtime as Loom's team). NULL when oneDNN
/// has no fast kernel for it.
typedef struct loom_onednn_linear loom_onednn_linear;
loom_onednn_linear *loom_onednn_linear_create(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldc,
                                              int has_bias, int bf16, int threads);
int64_t loom_onednn_linear_weight_bytes(const loom_onednn_linear *l);
/// Reorders W [n, k] (fp32) into `packed` (loom_onednn_linear_weight_bytes bytes); 1 on success.
int loom_onednn_linear_pack(const loom_onednn_linear *l, const float *w, void *packed);
/// 1 on success; 0 when oneDNN failed (the caller then computes the layer itself).
int loom_onednn_linear_run(const loom_onednn_linear *l, const void *x, const void *packed, float *y, const float *bias);
int loom_onednn_linear_bf16(const loom_onednn_linear *l);
void loom_onednn_linear_destroy(loom_onednn_linear *l);
/// Runs a prepared linear layer on x [m, k] (leading dimension lda), converting x into `x16`
/// (m·k bf16 values, over Loom's team) when the layer takes bf16; does nothing in create-only mode.
/// 1 on success.
int loom_linear_prepared(const loom_onednn_linear *l, int64_t m, int64_t k, const float *x, int64_t lda,
                         const void *packed, float *y, const float *bias, uint16_t *x16);

#endif

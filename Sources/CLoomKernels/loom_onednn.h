// Private: Loom's cache of oneDNN matmul primitives (gemm_onednn.c), used by the dispatcher.
#ifndef LOOM_ONEDNN_H
#define LOOM_ONEDNN_H

#include <stdint.h>

typedef struct loom_onednn_gemm loom_onednn_gemm;

/// The cached primitive for one call shape, created on first request (never NULL unless out of
/// memory); A and B are bf16 when `bf16`, C and bias always fp32.
loom_onednn_gemm *loom_onednn_gemm_get(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, int64_t lda,
                                       int64_t ldb, int64_t ldc, float alpha, int accumulate, int has_bias, int bf16);
/// 1 when oneDNN has a fast (non-reference, native-precision) implementation for it.
int loom_onednn_gemm_usable(const loom_onednn_gemm *g);
const char *loom_onednn_gemm_name(const loom_onednn_gemm *g);
/// Executes on the calling thread; 0 when oneDNN failed (the caller then computes it itself).
int loom_onednn_gemm_run(const loom_onednn_gemm *g, const void *a, const void *b, float *c, const float *bias);

#endif

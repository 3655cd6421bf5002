// Fused kernels produced by Loom's fusion pass. Same determinism rule as loom_kernels.h: every
// output element is computed by one thread in a fixed order.
#ifndef LOOM_FUSED_H
#define LOOM_FUSED_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction kinds of an elementwise program (see ElementwiseProgram in LoomIR).
typedef enum {
    LOOM_EW_UNARY = 0,    // a = register, op = loom_unary_op
    LOOM_EW_AFFINE = 1,   // a = register, f0 = scale, f1 = shift
    LOOM_EW_BINARY = 2,   // a, b = registers, op = loom_binary_op
    LOOM_EW_CONSTANT = 3, // f0 = value
} loom_ew_kind;

/// One instruction: it defines register `inputs + index`.
typedef struct {
    int32_t kind;
    int32_t op;
    int32_t a;
    int32_t b;
    float f0;
    float f1;
} loom_ew_instruction;

/// y (contiguous, `shape`, rank <= 8) = program(inputs). Input i is read through element strides
/// `strides[i * rank + d]` (0 on broadcast axes). The result is the last register.
void loom_elementwise(int rank, const int64_t *shape, int n_inputs, const float *const *inputs,
                      const int64_t *strides, int n_instructions, const loom_ew_instruction *program,
                      float *y);

/// y[r, :] = act(y[r, :] + bias) (act < 0: none; else a loom_unary_op) on one tile of
/// `rows`×`cols` whose rows are `ld` floats apart (bias from column 0 of `bias`), on the calling
/// thread only.
void loom_bias_activation_tile(float *y, int64_t rows, int64_t cols, int64_t ld, const float *bias, int act);

/// y[b, t, :] = norm(x[b, t, :]) (· weight) · (1 + scale[b, :]) + shift[b, :];
/// norm is LayerNorm without affine, or RMSNorm when `rms` (then `weight` is used; may be NULL).
void loom_norm_modulate(const float *x, const float *weight, const float *shift, const float *scale,
                        float *y, int64_t batch, int64_t tokens, int64_t dim, float eps, int rms);

#ifdef __cplusplus
}
#endif

#endif

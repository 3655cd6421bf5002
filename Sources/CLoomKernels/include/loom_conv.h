// 2-D convolution (NCHW activations, OIHW weights, one bias per output channel).
#ifndef LOOM_CONV_H
#define LOOM_CONV_H

#include <stdint.h>

/// The geometry of one convolution: input [n, c, h, w], weight [o, c, kh, kw], stride, and the
/// zero padding on each side (top, left, bottom, right); output [n, o, oh, ow].
typedef struct {
    int64_t n, c, h, w, o, kh, kw, stride;
    int64_t pad_top, pad_left, pad_bottom, pad_right;
    int64_t oh, ow;
} loom_conv_shape;

/// A convolution on oneDNN for one geometry, run over an OpenMP team of `threads`; its weight is
/// reordered once (loom_onednn_conv_pack) into the layout the primitive prefers. With `winograd`,
/// 3×3 stride-1 convolutions use oneDNN's Winograd kernel where it has one (AVX-512), the NCHW
/// activations reordered into its blocked layout and back around each call; the direct kernel
/// otherwise. NULL when oneDNN offers only its reference implementation.
typedef struct loom_onednn_conv loom_onednn_conv;
loom_onednn_conv *loom_onednn_conv_create(const loom_conv_shape *shape, int threads, int winograd);
/// Bytes of working memory one call uses beyond its operands (oneDNN's scratchpad, Winograd's
/// blocked src and dst).
int64_t loom_onednn_conv_scratch_bytes(const loom_onednn_conv *conv);
int64_t loom_onednn_conv_weight_bytes(const loom_onednn_conv *conv);
/// Reorders w [o, c, kh, kw] into `packed` (loom_onednn_conv_weight_bytes bytes); 1 on success.
int loom_onednn_conv_pack(const loom_onednn_conv *conv, const float *w, void *packed);
/// y = conv(x, w) + bias; 1 on success, 0 when oneDNN failed.
int loom_onednn_conv_run(const loom_onednn_conv *conv, const float *x, const void *packed, const float *bias, float *y);
/// The implementation oneDNN chose, e.g. "x64:gemm:jit".
const char *loom_onednn_conv_impl(const loom_onednn_conv *conv);
void loom_onednn_conv_destroy(loom_onednn_conv *conv);

/// Loom's own convolution: per image, column blocks of the unfolded input (im2col) multiplied by
/// the weight on loom_gemm, the blocks spread over Loom's thread team. y = conv(x, w) + bias.
/// Returns 0 when scratch memory could not be allocated (nothing sensible written), else 1.
int loom_conv2d_own(const loom_conv_shape *shape, const float *x, const float *w, const float *bias, float *y);

#endif

// 2-D convolution: oneDNN's primitive for one geometry (weights reordered once), and Loom's own
// im2col + GEMM path, used where oneDNN has no fast implementation or LOOM_CONV=own asks for it.
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>
#include "loom_conv.h"
#include "loom_gemm.h"
#include "loom_internal.h"
#include "loom_onednn.h"

struct loom_onednn_conv {
    loom_conv_shape shape;
    dnnl_primitive_t primitive;
    /// src and dst as the primitive takes them (blocked for Winograd), and as Loom stores them (NCHW).
    dnnl_memory_desc_t src_md, weights_md, bias_md, dst_md, scratchpad_md, plain_src_md, plain_dst_md;
    size_t scratchpad_bytes;
    /// Winograd only: the reorders NCHW → the primitive's src layout and its dst layout → NCHW.
    dnnl_primitive_t to_blocked, from_blocked;
    int threads, winograd;
    char impl[64];
};

// Winograd's blocked src and dst, per thread, grown as needed (launches run one at a time).
static __thread void *blocked_src, *blocked_dst;
static __thread size_t blocked_src_bytes, blocked_dst_bytes;

static void *grow(void **buffer, size_t *have, size_t bytes) {
    if (bytes <= *have) return *buffer;
    free(*buffer);
    *buffer = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    *have = *buffer ? bytes : 0;
    return *buffer;
}

static dnnl_primitive_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, int threads) {
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_engine_t engine = loom_onednn_engine();
    dnnl_status_t status = dnnl_runtime_error;
    LOOM_WITH_TEAM(threads, status = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL));
    if (status == dnnl_success) LOOM_WITH_TEAM(threads, status = dnnl_primitive_create(&reorder, pd));
    if (pd) dnnl_primitive_desc_destroy(pd);
    return status == dnnl_success ? reorder : NULL;
}

loom_onednn_conv *loom_onednn_conv_create(const loom_conv_shape *s, int threads, int winograd) {
    if (!loom_onednn_ensure_engine() || s->n <= 0 || s->oh <= 0 || s->ow <= 0) return NULL;
    loom_onednn_conv *conv = calloc(1, sizeof *conv);
    if (!conv) return NULL;
    conv->shape = *s;
    conv->threads = threads < 1 ? 1 : threads;
    // Winograd (oneDNN's F(4×4, 3×3), AVX-512) takes blocked activations: it is tried for 3×3
    // stride-1 convolutions, src and dst then reordered around it; otherwise direct on NCHW.
    conv->winograd = winograd && s->kh == 3 && s->kw == 3 && s->stride == 1;
    dnnl_dims_t src = {s->n, s->c, s->h, s->w}, weights = {s->o, s->c, s->kh, s->kw}, bias = {s->o};
    dnnl_dims_t dst = {s->n, s->o, s->oh, s->ow}, strides = {s->stride, s->stride};
    dnnl_dims_t pad_l = {s->pad_top, s->pad_left}, pad_r = {s->pad_bottom, s->pad_right};
    dnnl_memory_desc_t weights_any, src_request, dst_request;
    dnnl_convolution_desc_t desc;
    dnnl_format_tag_t activations = conv->winograd ? dnnl_format_tag_any : dnnl_nchw;
    int ok = dnnl_memory_desc_init_by_tag(&conv->plain_src_md, 4, src, dnnl_f32, dnnl_nchw) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&conv->plain_dst_md, 4, dst, dnnl_f32, dnnl_nchw) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&src_request, 4, src, dnnl_f32, activations) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&dst_request, 4, dst, dnnl_f32, activations) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&weights_any, 4, weights, dnnl_f32, dnnl_format_tag_any) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&conv->bias_md, 1, bias, dnnl_f32, dnnl_x) == dnnl_success &&
             dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                conv->winograd ? dnnl_convolution_winograd : dnnl_convolution_direct,
                                                &src_request, &weights_any, &conv->bias_md, &dst_request, strides, pad_l,
                                                pad_r) == dnnl_success;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t status = dnnl_runtime_error;
    if (ok && dnnl_primitive_attr_create(&attr) == dnnl_success) {
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
        LOOM_WITH_TEAM(conv->threads, status = dnnl_primitive_desc_create(&pd, &desc, attr, loom_onednn_engine(), NULL));
        dnnl_primitive_attr_destroy(attr);
    }
    const char *impl = "";
    if (status == dnnl_success) dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    int fast = status == dnnl_success && impl && strncmp(impl, "ref", 3) != 0;
    if (!fast && conv->winograd) {
        // No Winograd kernel here (e.g. AVX2 only): the direct convolution on NCHW.
        if (pd) dnnl_primitive_desc_destroy(pd);
        free(conv);
        return loom_onednn_conv_create(s, threads, 0);
    }
    if (fast) {
        strncpy(conv->impl, impl, sizeof conv->impl - 1);
        conv->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        conv->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        conv->weights_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (pad) conv->scratchpad_md = *pad, conv->scratchpad_bytes = dnnl_memory_desc_get_size(pad);
        LOOM_WITH_TEAM(conv->threads, status = dnnl_primitive_create(&conv->primitive, pd));
        fast = status == dnnl_success;
        if (fast && conv->winograd) {
            conv->to_blocked = make_reorder(&conv->plain_src_md, &conv->src_md, conv->threads);
            conv->from_blocked = make_reorder(&conv->dst_md, &conv->plain_dst_md, conv->threads);
            fast = conv->to_blocked && conv->from_blocked;
        }
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!fast) {
        loom_onednn_conv_destroy(conv);
        return NULL;
    }
    return conv;
}

int64_t loom_onednn_conv_weight_bytes(const loom_onednn_conv *conv) {
    return (int64_t)dnnl_memory_desc_get_size(&conv->weights_md);
}

int loom_onednn_conv_pack(const loom_onednn_conv *conv, const float *w, void *packed) {
    const loom_conv_shape *s = &conv->shape;
    dnnl_dims_t dims = {s->o, s->c, s->kh, s->kw};
    dnnl_memory_desc_t plain;
    if (dnnl_memory_desc_init_by_tag(&plain, 4, dims, dnnl_f32, dnnl_oihw) != dnnl_success) return 0;
    return loom_onednn_reorder(&plain, w, &conv->weights_md, packed);
}

int loom_onednn_conv_run(const loom_onednn_conv *conv, const float *x, const void *packed, const float *bias, float *y) {
    int kinds[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST};
    const dnnl_memory_desc_t *mds[4] = {&conv->src_md, &conv->weights_md, &conv->bias_md, &conv->dst_md};
    if (!conv->winograd) {
        void *handles[4] = {(void *)x, (void *)packed, (void *)bias, y};
        return loom_onednn_execute(conv->primitive, NULL, 4, kinds, mds, handles, &conv->scratchpad_md, conv->scratchpad_bytes,
                                   conv->threads);
    }
    void *src = grow(&blocked_src, &blocked_src_bytes, dnnl_memory_desc_get_size(&conv->src_md));
    void *dst = grow(&blocked_dst, &blocked_dst_bytes, dnnl_memory_desc_get_size(&conv->dst_md));
    if (!src || !dst) return 0;
    dnnl_memory_desc_t none;
    memset(&none, 0, sizeof none);
    int reorder_kinds[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    const dnnl_memory_desc_t *in_mds[2] = {&conv->plain_src_md, &conv->src_md}, *out_mds[2] = {&conv->dst_md, &conv->plain_dst_md};
    void *in_handles[2] = {(void *)x, src}, *out_handles[2] = {dst, y};
    void *handles[4] = {src, (void *)packed, (void *)bias, dst};
    return loom_onednn_execute(conv->to_blocked, NULL, 2, reorder_kinds, in_mds, in_handles, &none, 0, conv->threads) &&
           loom_onednn_execute(conv->primitive, NULL, 4, kinds, mds, handles, &conv->scratchpad_md, conv->scratchpad_bytes,
                               conv->threads) &&
           loom_onednn_execute(conv->from_blocked, NULL, 2, reorder_kinds, out_mds, out_handles, &none, 0, conv->threads);
}

const char *loom_onednn_conv_impl(const loom_onednn_conv *conv) { return conv ? conv->impl : ""; }

int64_t loom_onednn_conv_scratch_bytes(const loom_onednn_conv *conv) {
    if (!conv) return 0;
    int64_t bytes = (int64_t)conv->scratchpad_bytes;
    if (conv->winograd) bytes += (int64_t)(dnnl_memory_desc_get_size(&conv->src_md) + dnnl_memory_desc_get_size(&conv->dst_md));
    return bytes;
}

void loom_onednn_conv_destroy(loom_onednn_conv *conv) {
    if (!conv) return;
    if (conv->primitive) dnnl_primitive_destroy(conv->primitive);
    if (conv->to_blocked) dnnl_primitive_destroy(conv->to_blocked);
    if (conv->from_blocked) dnnl_primitive_destroy(conv->from_blocked);
    free(conv);
}

// ---------------------------------------------------------------------------------------------
// Loom's own path: im2col column blocks + loom_gemm.

/// Output positions per column block (each thread unfolds and multiplies one block at a time).
#define CONV_BLOCK 256

typedef struct {
    const loom_conv_shape *s;
    const float *x, *w, *bias;
    float *y;
    int64_t blocks_per_image;
    int failed;
} conv_ctx;

/// Unfolds output positions [p0, p0 + cols) of image `x` into col [c·kh·kw, cols].
static void unfold(const loom_conv_shape *s, const float *x, int64_t p0, int64_t cols, float *col) {
    for (int64_t c = 0; c < s->c; c++)
        for (int64_t ki = 0; ki < s->kh; ki++)
            for (int64_t kj = 0; kj < s->kw; kj++) {
                float *row = col + ((c * s->kh + ki) * s->kw + kj) * cols;
                const float *plane = x + c * s->h * s->w;
                for (int64_t j = 0; j < cols; j++) {
                    const int64_t p = p0 + j, oh = p / s->ow, ow = p % s->ow;
                    const int64_t ih = oh * s->stride - s->pad_top + ki, iw = ow * s->stride - s->pad_left + kj;
                    row[j] = ih >= 0 && ih < s->h && iw >= 0 && iw < s->w ? plane[ih * s->w + iw] : 0.0f;
                }
            }
}

static void conv_range(void *vctx, int64_t begin, int64_t end) {
    conv_ctx *c = (conv_ctx *)vctx;
    const loom_conv_shape *s = c->s;
    const int64_t k = s->c * s->kh * s->kw, positions = s->oh * s->ow;
    float *col = malloc(sizeof(float) * (size_t)(k * CONV_BLOCK));
    float *scratch = malloc(sizeof(float) * (size_t)loom_gemm_scratch_floats(s->o, CONV_BLOCK, k));
    if (!col || !scratch) {
        __atomic_store_n(&c->failed, 1, __ATOMIC_RELAXED);
        free(col);
        free(scratch);
        return;
    }
    for (int64_t item = begin; item < end; item++) {
        const int64_t image = item / c->blocks_per_image, p0 = (item % c->blocks_per_image) * CONV_BLOCK;
        const int64_t cols = positions - p0 < CONV_BLOCK ? positions - p0 : CONV_BLOCK;
        const float *x = c->x + image * s->c * s->h * s->w;
        float *y = c->y + image * s->o * positions + p0;  // [o, positions], this block's columns
        unfold(s, x, p0, cols, col);
        for (int64_t o = 0; o < s->o; o++) {
            const float b = c->bias ? c->bias[o] : 0.0f;
            for (int64_t j = 0; j < cols; j++) y[o * positions + j] = b;
        }
        loom_gemm(0, 0, s->o, cols, k, 1.0f, c->w, k, col, cols, 1, y, positions, NULL, scratch);
    }
    free(col);
    free(scratch);
}

int loom_conv2d_own(const loom_conv_shape *s, const float *x, const float *w, const float *bias, float *y) {
    const int64_t positions = s->oh * s->ow;
    if (s->n <= 0 || positions <= 0 || s->o <= 0) return 1;
    conv_ctx c = {s, x, w, bias, y, (positions + CONV_BLOCK - 1) / CONV_BLOCK, 0};
    const int64_t items = s->n * c.blocks_per_image;
    loom__parallel_for(items, items * CONV_BLOCK * s->o * s->c * s->kh * s->kw, conv_range, &c);
    return !c.failed;
}

// oneDNN matmul primitives for Loom's GEMM calls: one primitive per call shape (transposes,
// sizes, leading dimensions, alpha, accumulate, bias, operand type), created once and cached for
// the life of the process. Every primitive is created and executed with one thread: Loom's team
// decides how a GEMM is split, and oneDNN's OpenMP calls resolve to the same LLVM runtime.
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "loom_gemm.h"
#include "loom_onednn.h"

typedef struct {
    int trans_a, trans_b, accumulate, has_bias, bf16;
    int64_t m, n, k, lda, ldb, ldc;
    uint32_t alpha_bits;
} gemm_key;

struct loom_onednn_gemm {
    gemm_key key;
    dnnl_primitive_t primitive;   // NULL when oneDNN offers no fast implementation
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md, scratchpad_md;
    size_t scratchpad_bytes;
    const char *impl;
    loom_onednn_args *args;       // memory objects kept per thread
    struct loom_onednn_gemm *next;  // set before the entry is published, never changed after
};

#define BUCKETS 1024
// Insert-only: readers walk a bucket without the lock (entries are published with a release store
// once complete); the lock serialises creation.
static struct loom_onednn_gemm *table[BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hash_key(const gemm_key *key) {
    const unsigned char *bytes = (const unsigned char *)key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *key; i++) h = (h ^ bytes[i]) * 1099511628211ull;
    return h;
}

int loom_onednn_cap_isa(int level) {
    dnnl_cpu_isa_t isa = level <= 0 ? dnnl_cpu_isa_avx2 : level == 1 ? dnnl_cpu_isa_avx512_core_bf16
                                                                        : dnnl_cpu_isa_avx512_core_amx;
    return dnnl_set_max_cpu_isa(isa) == dnnl_success;
}

static int strided(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                   dnnl_data_type_t type) {
    dnnl_dims_t dims = {rows, cols}, strides = {row_stride, col_stride};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides) == dnnl_success;
}

static void create(struct loom_onednn_gemm *g) {
    const gemm_key *key = &g->key;
    g->impl = "";
    if (!loom_onednn_ensure_engine()) return;
    dnnl_engine_t engine = loom_onednn_engine();
    dnnl_data_type_t type = key->bf16 ? dnnl_bf16 : dnnl_f32;
    // op(A) [m, k]: stored [m, k] (lda) or [k, m] (transposed); op(B) [k, n]: stored [k, n] or [n, k].
    int ok = strided(&g->a_md, key->m, key->k, key->trans_a ? 1 : key->lda, key->trans_a ? key->lda : 1, type) &&
             strided(&g->b_md, key->k, key->n, key->trans_b ? 1 : key->ldb, key->trans_b ? key->ldb : 1, type) &&
             strided(&g->c_md, key->m, key->n, key->ldc, 1, dnnl_f32) &&
             strided(&g->bias_md, 1, key->n, key->n, 1, dnnl_f32);
    if (!ok) return;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &g->a_md, &g->b_md, key->has_bias ? &g->bias_md : NULL, &g->c_md) != dnnl_success)
        return;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post_ops = NULL;
    float alpha;
    memcpy(&alpha, &key->alpha_bits, sizeof alpha);
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (alpha != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
    if (key->accumulate) {
        dnnl_post_ops_create(&post_ops);
        dnnl_post_ops_append_sum(post_ops, 1.0f);
        dnnl_primitive_attr_set_post_ops(attr, post_ops);
    }
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t status;
    LOOM_ONE_THREAD(status = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL));
    if (post_ops) dnnl_post_ops_destroy(post_ops);
    dnnl_primitive_attr_destroy(attr);
    if (status != dnnl_success) return;
    const char *impl = "";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    g->impl = impl ? strdup(impl) : "";
    // Reference kernels and emulations are slower than Loom's own GEMM: refuse them.
    int fast = impl && strncmp(impl, "ref", 3) != 0 && (!key->bf16 || strstr(impl, "bf16") != NULL);
    const dnnl_memory_desc_t *scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (scratchpad) {
        g->scratchpad_md = *scratchpad;
        g->scratchpad_bytes = dnnl_memory_desc_get_size(scratchpad);
    }
    if (fast) {
        LOOM_ONE_THREAD(status = dnnl_primitive_create(&g->primitive, pd));
        if (status != dnnl_success) g->primitive = NULL;
        else g->args = loom_onednn_args_create();
    }
    dnnl_primitive_desc_destroy(pd);
}

static struct loom_onednn_gemm *find(struct loom_onednn_gemm *g, const gemm_key *key) {
    while (g && memcmp(&g->key, key, sizeof *key) != 0) g = g->next;
    return g;
}

loom_onednn_gemm *loom_onednn_gemm_get(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, int64_t lda,
                                       int64_t ldb, int64_t ldc, float alpha, int accumulate, int has_bias, int bf16) {
    gemm_key key;
    memset(&key, 0, sizeof key);  // padding bytes take part in the hash and the comparison
    key.trans_a = trans_a, key.trans_b = trans_b, key.accumulate = accumulate, key.has_bias = has_bias;
    key.bf16 = bf16, key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    memcpy(&key.alpha_bits, &alpha, sizeof alpha);
    uint64_t bucket = hash_key(&key) % BUCKETS;
    struct loom_onednn_gemm *g = find(__atomic_load_n(&table[bucket], __ATOMIC_ACQUIRE), &key);
    if (g) return g;
    pthread_mutex_lock(&table_lock);
    g = find(table[bucket], &key);
    if (!g) {
        g = calloc(1, sizeof *g);
        if (g) {
            g->key = key;
            create(g);
            g->next = table[bucket];
            __atomic_store_n(&table[bucket], g, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&table_lock);
    return g;
}

int loom_onednn_gemm_usable(const loom_onednn_gemm *g) { return g && g->primitive; }

const char *loom_onednn_gemm_name(const loom_onednn_gemm *g) { return g ? g->impl : ""; }

static int execute_matmul(dnnl_primitive_t primitive, loom_onednn_args *cache, const dnnl_memory_desc_t *src_md, const dnnl_memory_desc_t *weights_md,
                          const dnnl_memory_desc_t *dst_md, const dnnl_memory_desc_t *bias_md,
                          const dnnl_memory_desc_t *scratchpad_md, size_t scratchpad_bytes, const void *src,
                          const void *weights, void *dst, const void *bias, int has_bias, int64_t team) {
    const dnnl_memory_desc_t *mds[4] = {src_md, weights_md, dst_md, bias_md};
    void *handles[4] = {(void *)src, (void *)weights, dst, (void *)bias};
    int kinds[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    return loom_onednn_execute(primitive, cache, has_bias ? 4 : 3, kinds, mds, handles, scratchpad_md, scratchpad_bytes,
                               team);
}

int loom_onednn_gemm_run(const loom_onednn_gemm *g, const void *a, const void *b, float *c, const float *bias) {
    return g && execute_matmul(g->primitive, g->args, &g->a_md, &g->b_md, &g->c_md, &g->bias_md, &g->scratchpad_md,
                               g->scratchpad_bytes, a, b, c, bias, g->key.has_bias, 0);
}

const char *loom_onednn_gemm_impl(int64_t m, int64_t n, int64_t k, int bf16) {
    return loom_onednn_gemm_name(loom_onednn_gemm_get(0, 1, m, n, k, k, k, n, 1.0f, 0, 0, bf16));
}


// A whole linear layer on oneDNN with its weight reordered once (forward plans): one primitive for
// y[m, n] = x[m, k]·Wᵀ + bias over the team, with W in the layout the primitive prefers.
struct loom_onednn_linear {
    dnnl_primitive_t primitive;
    loom_onednn_args *args;  // memory objects kept per thread
    dnnl_memory_desc_t x_md, w_md, y_md, bias_md, scratchpad_md;
    size_t scratchpad_bytes;
    int64_t m, n, k, threads;
    int bf16, has_bias;
};

loom_onednn_linear *loom_onednn_linear_create(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldc,
                                              int has_bias, int bf16, int threads) {
    if (!loom_onednn_ensure_engine() || m <= 0 || n <= 0 || k <= 0) return NULL;
    loom_onednn_linear *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->m = m, l->n = n, l->k = k, l->threads = threads < 1 ? 1 : threads, l->bf16 = bf16, l->has_bias = has_bias;
    dnnl_engine_t engine = loom_onednn_engine();
    dnnl_data_type_t type = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t w_dims = {k, n};
    dnnl_memory_desc_t w_any;
    int ok = strided(&l->x_md, m, k, bf16 ? k : lda, 1, type) && strided(&l->y_md, m, n, ldc, 1, dnnl_f32) &&
             strided(&l->bias_md, 1, n, n, 1, dnnl_f32) &&
             dnnl_memory_desc_init_by_tag(&w_any, 2, w_dims, type, dnnl_format_tag_any) == dnnl_success;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t status = dnnl_runtime_error;
    if (ok && dnnl_matmul_desc_init(&desc, &l->x_md, &w_any, has_bias ? &l->bias_md : NULL, &l->y_md) == dnnl_success &&
        dnnl_primitive_attr_create(&attr) == dnnl_success) {
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
        LOOM_WITH_TEAM(l->threads, status = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL));
        dnnl_primitive_attr_destroy(attr);
    }
    const char *impl = "";
    if (status == dnnl_success) dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    int fast = status == dnnl_success && impl && strncmp(impl, "ref", 3) != 0 && (!bf16 || strstr(impl, "bf16"));
    if (fast) {
        l->w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (pad) l->scratchpad_md = *pad, l->scratchpad_bytes = dnnl_memory_desc_get_size(pad);
        LOOM_WITH_TEAM(l->threads, status = dnnl_primitive_create(&l->primitive, pd));
        fast = status == dnnl_success;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!fast) {
        free(l);
        return NULL;
    }
    l->args = loom_onednn_args_create();
    return l;
}

int64_t loom_onednn_linear_weight_bytes(const loom_onednn_linear *l) { return (int64_t)dnnl_memory_desc_get_size(&l->w_md); }

int loom_onednn_linear_pack(const loom_onednn_linear *l, const float *w, void *packed) {
    // W [n, k] row-major is op(B) [k, n] with strides (1, k); the reorder converts to bf16 (nearest
    // even) when the primitive takes bf16.
    dnnl_memory_desc_t src_md;
    if (!strided(&src_md, l->k, l->n, 1, l->k, dnnl_f32)) return 0;
    return loom_onednn_reorder(&src_md, w, &l->w_md, packed);
}

int loom_onednn_linear_run(const loom_onednn_linear *l, const void *x, const void *packed, float *y, const float *bias) {
    return execute_matmul(l->primitive, l->args, &l->x_md, &l->w_md, &l->y_md, &l->bias_md, &l->scratchpad_md, l->scratchpad_bytes,
                          x, packed, y, bias, l->has_bias, l->threads);
}

int loom_onednn_linear_bf16(const loom_onednn_linear *l) { return l->bf16; }

void loom_onednn_linear_destroy(loom_onednn_linear *l) {
    if (!l) return;
    if (l->primitive) dnnl_primitive_destroy(l->primitive);
    loom_onednn_args_destroy(l->args);
    free(l);
}

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

// The OpenMP runtime calls used here (LLVM libomp; declared rather than taken from omp.h, which
// the Swift toolchain's clang does not ship).
int omp_in_parallel(void);
int omp_get_max_threads(void);
void omp_set_num_threads(int);

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
    struct loom_onednn_gemm *next;
};

#define BUCKETS 1024
static struct loom_onednn_gemm *table[BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
// Streams are not thread-safe and the library's shared scratchpad is not either (Debian's build):
// each thread executes on its own stream with its own scratchpad (primitives use user scratchpads).
static __thread dnnl_stream_t thread_stream;
static __thread void *thread_scratchpad;
static __thread size_t thread_scratchpad_bytes;

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

/// Runs `body` with oneDNN limited to the calling thread: inside a Loom team oneDNN already
/// runs sequentially; outside one, the OpenMP default team size is set to 1 around the call.
#define ONE_THREAD(body)                                      \
    do {                                                      \
        int outside = !omp_in_parallel();                     \
        int saved = outside ? omp_get_max_threads() : 1;      \
        if (outside && saved != 1) omp_set_num_threads(1);    \
        body;                                                 \
        if (outside && saved != 1) omp_set_num_threads(saved); \
    } while (0)

static int strided(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                   dnnl_data_type_t type) {
    dnnl_dims_t dims = {rows, cols}, strides = {row_stride, col_stride};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides) == dnnl_success;
}

static void create(struct loom_onednn_gemm *g) {
    const gemm_key *key = &g->key;
    g->impl = "";
    if (!engine && dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return;
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
    ONE_THREAD(status = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL));
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
        ONE_THREAD(status = dnnl_primitive_create(&g->primitive, pd));
        if (status != dnnl_success) g->primitive = NULL;
    }
    dnnl_primitive_desc_destroy(pd);
}

loom_onednn_gemm *loom_onednn_gemm_get(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, int64_t lda,
                                       int64_t ldb, int64_t ldc, float alpha, int accumulate, int has_bias, int bf16) {
    gemm_key key;
    memset(&key, 0, sizeof key);  // padding bytes take part in the hash and the comparison
    key.trans_a = trans_a, key.trans_b = trans_b, key.accumulate = accumulate, key.has_bias = has_bias;
    key.bf16 = bf16, key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    memcpy(&key.alpha_bits, &alpha, sizeof alpha);
    uint64_t bucket = hash_key(&key) % BUCKETS;
    pthread_mutex_lock(&table_lock);
    struct loom_onednn_gemm *g = table[bucket];
    while (g && memcmp(&g->key, &key, sizeof key) != 0) g = g->next;
    if (!g) {
        g = calloc(1, sizeof *g);
        if (g) {
            g->key = key;
            create(g);
            g->next = table[bucket];
            table[bucket] = g;
        }
    }
    pthread_mutex_unlock(&table_lock);
    return g;
}

int loom_onednn_gemm_usable(const loom_onednn_gemm *g) { return g && g->primitive; }

const char *loom_onednn_gemm_name(const loom_onednn_gemm *g) { return g ? g->impl : ""; }

/// The calling thread's stream and a scratchpad of at least `bytes`; 0 when out of memory.
static int thread_resources(size_t bytes) {
    if (!thread_stream && dnnl_stream_create(&thread_stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        thread_stream = NULL;
        return 0;
    }
    if (bytes > thread_scratchpad_bytes) {
        free(thread_scratchpad);
        thread_scratchpad = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        thread_scratchpad_bytes = thread_scratchpad ? bytes : 0;
        if (!thread_scratchpad) return 0;
    }
    return 1;
}

/// Executes a matmul primitive on the calling thread's stream and scratchpad with src, weights,
/// dst (and bias when `has_bias`) at the given addresses: on the calling thread alone when `team`
/// is 0, else over an OpenMP team of `team` threads. 1 on success.
int loom_onednn_ensure_engine(void) {
    pthread_mutex_lock(&table_lock);
    int ok = engine || dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success;
    pthread_mutex_unlock(&table_lock);
    return ok;
}

dnnl_engine_t loom_onednn_engine(void) { return engine; }

int loom_onednn_execute(dnnl_primitive_t primitive, int count, const int *kinds, const dnnl_memory_desc_t *const *mds,
                        void *const *handles, const dnnl_memory_desc_t *scratchpad_md, size_t scratchpad_bytes,
                        int64_t team) {
    if (!primitive || count > 7 || !thread_resources(scratchpad_bytes)) return 0;
    dnnl_exec_arg_t args[8];
    int made = 0, ok = 1;
    for (; made < count + 1 && ok; made++) {
        int last = made == count;
        args[made].arg = last ? DNNL_ARG_SCRATCHPAD : kinds[made];
        ok = dnnl_memory_create(&args[made].memory, last ? scratchpad_md : mds[made], engine,
                                last ? thread_scratchpad : handles[made]) == dnnl_success;
        if (!ok) break;
    }
    if (ok) {
        dnnl_status_t status;
        if (team > 0) LOOM_WITH_TEAM(team, status = dnnl_primitive_execute(primitive, thread_stream, count + 1, args));
        else ONE_THREAD(status = dnnl_primitive_execute(primitive, thread_stream, count + 1, args));
        ok = status == dnnl_success;
    }
    for (int i = 0; i < made; i++) dnnl_memory_destroy(args[i].memory);
    return ok;
}

static int execute_matmul(dnnl_primitive_t primitive, const dnnl_memory_desc_t *src_md, const dnnl_memory_desc_t *weights_md,
                          const dnnl_memory_desc_t *dst_md, const dnnl_memory_desc_t *bias_md,
                          const dnnl_memory_desc_t *scratchpad_md, size_t scratchpad_bytes, const void *src,
                          const void *weights, void *dst, const void *bias, int has_bias, int64_t team) {
    const dnnl_memory_desc_t *mds[4] = {src_md, weights_md, dst_md, bias_md};
    void *handles[4] = {(void *)src, (void *)weights, dst, (void *)bias};
    int kinds[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    return loom_onednn_execute(primitive, has_bias ? 4 : 3, kinds, mds, handles, scratchpad_md, scratchpad_bytes, team);
}

int loom_onednn_gemm_run(const loom_onednn_gemm *g, const void *a, const void *b, float *c, const float *bias) {
    return g && execute_matmul(g->primitive, &g->a_md, &g->b_md, &g->c_md, &g->bias_md, &g->scratchpad_md,
                               g->scratchpad_bytes, a, b, c, bias, g->key.has_bias, 0);
}

const char *loom_onednn_gemm_impl(int64_t m, int64_t n, int64_t k, int bf16) {
    return loom_onednn_gemm_name(loom_onednn_gemm_get(0, 1, m, n, k, k, k, n, 1.0f, 0, 0, bf16));
}


// A whole linear layer on oneDNN with its weight reordered once (forward plans): one primitive for
// y[m, n] = x[m, k]·Wᵀ + bias over the team, with W in the layout the primitive prefers.
struct loom_onednn_linear {
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t x_md, w_md, y_md, bias_md, scratchpad_md;
    size_t scratchpad_bytes;
    int64_t m, n, k, threads;
    int bf16, has_bias;
};

loom_onednn_linear *loom_onednn_linear_create(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldc,
                                              int has_bias, int bf16, int threads) {
    pthread_mutex_lock(&table_lock);
    int engine_ok = engine || dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success;
    pthread_mutex_unlock(&table_lock);
    if (!engine_ok || m <= 0 || n <= 0 || k <= 0) return NULL;
    loom_onednn_linear *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->m = m, l->n = n, l->k = k, l->threads = threads < 1 ? 1 : threads, l->bf16 = bf16, l->has_bias = has_bias;
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
    pthread_mutex_lock(&table_lock);
    pthread_mutex_unlock(&table_lock);
    return l;
}

int64_t loom_onednn_linear_weight_bytes(const loom_onednn_linear *l) { return (int64_t)dnnl_memory_desc_get_size(&l->w_md); }

int loom_onednn_linear_pack(const loom_onednn_linear *l, const float *w, void *packed) {
    // W [n, k] row-major is op(B) [k, n] with strides (1, k); the reorder converts to bf16 (nearest
    // even) when the primitive takes bf16.
    dnnl_memory_desc_t src_md;
    if (!strided(&src_md, l->k, l->n, 1, l->k, dnnl_f32)) return 0;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t src = NULL, dst = NULL;
    int ok = dnnl_reorder_primitive_desc_create(&pd, &src_md, engine, &l->w_md, engine, NULL) == dnnl_success &&
             dnnl_primitive_create(&reorder, pd) == dnnl_success &&
             dnnl_memory_create(&src, &src_md, engine, (void *)w) == dnnl_success &&
             dnnl_memory_create(&dst, &l->w_md, engine, packed) == dnnl_success && thread_resources(0);
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
        dnnl_status_t status;
        ONE_THREAD(status = dnnl_primitive_execute(reorder, thread_stream, 2, args));
        ok = status == dnnl_success;
    }
    if (src) dnnl_memory_destroy(src);
    if (dst) dnnl_memory_destroy(dst);
    if (reorder) dnnl_primitive_destroy(reorder);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return ok;
}

int loom_onednn_linear_run(const loom_onednn_linear *l, const void *x, const void *packed, float *y, const float *bias) {
    return execute_matmul(l->primitive, &l->x_md, &l->w_md, &l->y_md, &l->bias_md, &l->scratchpad_md, l->scratchpad_bytes,
                          x, packed, y, bias, l->has_bias, l->threads);
}

int loom_onednn_linear_bf16(const loom_onednn_linear *l) { return l->bf16; }

void loom_onednn_linear_destroy(loom_onednn_linear *l) {
    if (!l) return;
    if (l->primitive) dnnl_primitive_destroy(l->primitive);
    free(l);
}

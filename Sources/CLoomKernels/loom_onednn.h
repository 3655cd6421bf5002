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

/// Shared by the oneDNN wrappers (onednn_execute.c owns the engine, streams and scratchpads):
/// creates the CPU engine once; 1 when it exists.
int loom_onednn_ensure_engine(void);
#include <oneapi/dnnl/dnnl.h>
dnnl_engine_t loom_onednn_engine(void);
/// A primitive's argument memory objects, kept per thread between its calls (see onednn_execute.c).
typedef struct loom_onednn_args loom_onednn_args;
/// NULL when out of memory (calls then create their memory objects each time).
loom_onednn_args *loom_onednn_args_create(void);
void loom_onednn_args_destroy(loom_onednn_args *args);
/// Executes `primitive` on the calling thread's stream with `count` arguments (kind, descriptor,
/// address) plus the thread's scratchpad: over an OpenMP team of `team` threads, or on the calling
/// thread alone when `team` is 0. With `cache` (one per primitive, its descriptors the same at
/// every call) the memory objects are kept; with NULL they live for this call. 1 on success.
int loom_onednn_execute(dnnl_primitive_t primitive, loom_onednn_args *cache, int count, const int *kinds,
                        const dnnl_memory_desc_t *const *mds, void *const *handles,
                        const dnnl_memory_desc_t *scratchpad_md, size_t scratchpad_bytes, int64_t team);
/// Copies `src` (layout `from`) into `dst` (layout `to`) with a one-off reorder on the calling
/// thread (weights packed once per load); 1 on success.
int loom_onednn_reorder(const dnnl_memory_desc_t *from, const void *src, const dnnl_memory_desc_t *to, void *dst);
/// The OpenMP runtime calls used by the wrappers (LLVM libomp; declared rather than taken from
/// omp.h, which the Swift toolchain's clang does not ship).
int omp_in_parallel(void);
int omp_get_max_threads(void);
void omp_set_num_threads(int);
/// Runs `body` with the OpenMP default team at `threads` (oneDNN sizes its team from it).
#define LOOM_WITH_TEAM(threads, body)                                    \
    do {                                                                 \
        int saved_team = omp_get_max_threads();                          \
        if (saved_team != (threads)) omp_set_num_threads((int)(threads)); \
        body;                                                            \
        if (saved_team != (threads)) omp_set_num_threads(saved_team);    \
    } while (0)

/// Runs `body` with oneDNN limited to the calling thread: inside a Loom team oneDNN already
/// runs sequentially; outside one, the OpenMP default team size is set to 1 around the call.
#define LOOM_ONE_THREAD(body)                                 \
    do {                                                      \
        int outside = !omp_in_parallel();                     \
        int saved = outside ? omp_get_max_threads() : 1;      \
        if (outside && saved != 1) omp_set_num_threads(1);    \
        body;                                                 \
        if (outside && saved != 1) omp_set_num_threads(saved); \
    } while (0)

#endif

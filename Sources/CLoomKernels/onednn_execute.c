// Executing oneDNN primitives for Loom: the CPU engine, one stream and one scratchpad per thread,
// and the argument memory objects a primitive keeps per thread between calls.
//
// Creating and destroying a oneDNN memory object costs about 0.4 µs, and a GEMM needs four of them
// (A, B, C, scratchpad); a per-head attention GEMM of a small model computes for about as long.
// So a primitive that is called again and again (the GEMM cache, prepared linear layers) owns a
// `loom_onednn_args`: for each thread, its memory objects, created on the thread's first call and
// afterwards only pointed at the call's buffers.
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "loom_onednn.h"

static dnnl_engine_t engine;
static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;
// Streams are not thread-safe and the library's shared scratchpad is not either (Debian's build):
// each thread executes on its own stream with its own scratchpad (primitives use user scratchpads).
static __thread dnnl_stream_t thread_stream;
static __thread void *thread_scratchpad;
static __thread size_t thread_scratchpad_bytes;

int loom_onednn_ensure_engine(void) {
    pthread_mutex_lock(&engine_lock);
    int ok = engine || dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success;
    pthread_mutex_unlock(&engine_lock);
    return ok;
}

dnnl_engine_t loom_onednn_engine(void) { return engine; }

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

/// Threads beyond this many (in the life of the process) create their memory objects per call.
#define THREAD_SLOTS 64
#define MAX_ARGS 8

/// One thread's memory objects for one primitive: `count` arguments, the scratchpad last.
typedef struct {
    int count;
    dnnl_memory_t memory[MAX_ARGS];
} kept_arguments;

struct loom_onednn_args {
    kept_arguments *slot[THREAD_SLOTS];  // each written and read by its own thread only
};

/// The calling thread's slot, fixed for its life: 0, 1, … in the order threads first ask.
static int thread_slot(void) {
    static atomic_int next_slot;
    static __thread int slot = -1;
    if (slot < 0) slot = atomic_fetch_add(&next_slot, 1);
    return slot;
}

loom_onednn_args *loom_onednn_args_create(void) { return calloc(1, sizeof(loom_onednn_args)); }

void loom_onednn_args_destroy(loom_onednn_args *args) {
    if (!args) return;
    for (int s = 0; s < THREAD_SLOTS; s++) {
        kept_arguments *kept = args->slot[s];
        if (!kept) continue;
        for (int i = 0; i < kept->count; i++)
            if (kept->memory[i]) dnnl_memory_destroy(kept->memory[i]);
        free(kept);
    }
    free(args);
}

/// The calling thread's kept memory objects for `count` arguments, or NULL (no cache, a thread
/// beyond the slots, out of memory): the call then creates and destroys its own.
static kept_arguments *kept_for_thread(loom_onednn_args *args, int count) {
    int slot = args ? thread_slot() : THREAD_SLOTS;
    if (slot >= THREAD_SLOTS) return NULL;
    kept_arguments *kept = args->slot[slot];
    if (!kept) {
        kept = calloc(1, sizeof *kept);
        if (!kept) return NULL;
        kept->count = count;
        args->slot[slot] = kept;
    }
    return kept->count == count ? kept : NULL;
}

int loom_onednn_execute(dnnl_primitive_t primitive, loom_onednn_args *cache, int count, const int *kinds,
                        const dnnl_memory_desc_t *const *mds, void *const *handles,
                        const dnnl_memory_desc_t *scratchpad_md, size_t scratchpad_bytes, int64_t team) {
    if (!primitive || count + 1 > MAX_ARGS || !thread_resources(scratchpad_bytes)) return 0;
    int total = count + 1;
    kept_arguments *kept = kept_for_thread(cache, total);
    dnnl_exec_arg_t args[MAX_ARGS];
    int made = 0, ok = 1;  // memory objects made for this call alone (kept == NULL)
    for (int i = 0; i < total && ok; i++) {
        int scratchpad = i == count;
        const dnnl_memory_desc_t *md = scratchpad ? scratchpad_md : mds[i];
        void *handle = scratchpad ? thread_scratchpad : handles[i];
        args[i].arg = scratchpad ? DNNL_ARG_SCRATCHPAD : kinds[i];
        if (kept && kept->memory[i]) {
            ok = dnnl_memory_set_data_handle(kept->memory[i], handle) == dnnl_success;
            args[i].memory = kept->memory[i];
        } else {
            ok = dnnl_memory_create(&args[i].memory, md, engine, handle) == dnnl_success;
            if (!ok) break;
            if (kept) kept->memory[i] = args[i].memory;
            else made = i + 1;
        }
    }
    if (ok) {
        dnnl_status_t status;
        if (team > 0) LOOM_WITH_TEAM(team, status = dnnl_primitive_execute(primitive, thread_stream, total, args));
        else LOOM_ONE_THREAD(status = dnnl_primitive_execute(primitive, thread_stream, total, args));
        ok = status == dnnl_success;
    }
    for (int i = 0; i < made; i++) dnnl_memory_destroy(args[i].memory);
    return ok;
}

int loom_onednn_reorder(const dnnl_memory_desc_t *from, const void *src, const dnnl_memory_desc_t *to, void *dst) {
    if (!loom_onednn_ensure_engine()) return 0;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t reorder = NULL;
    int ok = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL) == dnnl_success &&
             dnnl_primitive_create(&reorder, pd) == dnnl_success;
    if (ok) {
        int kinds[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
        const dnnl_memory_desc_t *mds[2] = {from, to};
        void *handles[2] = {(void *)src, dst};
        dnnl_memory_desc_t none;
        memset(&none, 0, sizeof none);
        ok = loom_onednn_execute(reorder, NULL, 2, kinds, mds, handles, &none, 0, 0);
    }
    if (reorder) dnnl_primitive_destroy(reorder);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return ok;
}

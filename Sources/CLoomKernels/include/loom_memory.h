// Process-wide allocator settings for the runtime.
#ifndef LOOM_MEMORY_H
#define LOOM_MEMORY_H

#ifdef __cplusplus
extern "C" {
#endif

/// Keeps freed buffers in the heap instead of returning them to the kernel, so buffers of the
/// same sizes allocated every step do not fault their pages in again.
void loom_keep_heap_memory(void);

#ifdef __cplusplus
}
#endif

#endif

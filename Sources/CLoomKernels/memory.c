#include "loom_memory.h"

#include <malloc.h>

void loom_keep_heap_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
}

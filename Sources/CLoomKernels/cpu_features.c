// CPU feature detection for kernel selection: CPUID leaves 1 and 7, XGETBV for the register state
// the OS saves, and the Linux permission request AMX needs before its first tile instruction.
#include <cpuid.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "loom_gemm.h"
#include "loom_internal.h"

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

loom_cpu_features loom_detect_cpu(void) {
    loom_cpu_features f = {0, 0, 0, 0};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
    if (!osxsave) return f;
    uint64_t xcr0 = xgetbv0();
    int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xE6) == 0xE6, tiles = (xcr0 & 0x60000) == 0x60000;
    if (__get_cpuid_max(0, 0) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);  // F DQ BW VL
    int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    int bf16 = (a1 >> 5) & 1;
    f.avx2_fma = avx2 && fma && ymm;
    f.avx512f = f.avx2_fma && avx512 && zmm;
    f.avx512_bf16 = f.avx512f && bf16;
    f.amx_bf16 = f.avx512_bf16 && amx_bf16 && amx_tile && tiles;
    return f;
}

int loom_request_amx_permission(void) {
#ifdef __linux__
    const long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
    return 0;
#endif
}

int loom__vector_avx512 = 0;

/// Plans set the vector ISA before every run: the CPU is asked once (every thread that races here
/// computes the same answer).
static int cpu_has_avx512 = -1;

int loom_set_vector_isa(int avx512) {
    if (cpu_has_avx512 < 0) cpu_has_avx512 = loom_detect_cpu().avx512f;
    loom__vector_avx512 = avx512 && cpu_has_avx512;
    return loom__vector_avx512;
}

int loom_get_vector_isa(void) { return loom__vector_avx512; }

/* runtime.c: what every kernel file relies on and none owns: the OpenMP team size that Python
 * sets (tinygpt.backend.set_num_threads), the aligned scratch allocator, and a report of the
 * vector instructions the build uses and the CPU has. Not here: any math. */
#include <stdio.h>
#include <stdlib.h>
#include "tinygpt.h"
#include "tinygpt_internal.h"

void tinygpt_set_num_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n > 0 ? n : 1);
#else
    (void)n;
#endif
}

int tinygpt_get_num_threads(void) { return TG_MAX_THREADS(); }

/* 64-byte aligned, so packed panels and vector loads never straddle a cache line; the size is
 * rounded up to a multiple of 64 as aligned_alloc requires. */
float *tg_alloc(long count)
{
    size_t bytes = ((size_t)(count > 0 ? count : 1) * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes);
}

/* "build: <ISA the compiler was allowed to use>; cpu: <what this CPU has>", asked at run time:
 * the extension is built with -march=native where it is installed, so the two differ only when
 * a build is moved to another machine (which then may not run it). */
const char *tinygpt_simd(void)
{
    static char text[96];
    const char *build =
#if defined(__AVX512F__)
        "avx512f+avx2+fma";
#elif defined(__AVX2__) && defined(__FMA__)
        "avx2+fma";
#elif defined(__AVX__)
        "avx";
#else
        "no avx";
#endif
    const char *cpu = "unknown";
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    cpu = __builtin_cpu_supports("avx512f") ? "avx512f+avx2+fma"
        : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? "avx2+fma"
        : __builtin_cpu_supports("avx") ? "avx" : "no avx";
#endif
    snprintf(text, sizeof text, "build: %s; cpu: %s", build, cpu);
    return text;
}

/* runtime.c: what every kernel file relies on and none owns: the OpenMP team size that Python
 * sets (tinygpt.backend.set_num_threads) and the aligned scratch allocator.
 * Not here: any math. */
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

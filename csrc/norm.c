/* norm.c: the sum of squares of a float32 array, accumulated in double: the squared gradient norm
 * of clip_grad_norm_ in one threaded pass, without the float64 copy NumPy would make.
 * The array is cut into BLOCKS fixed ranges whose partial sums are added in order, so the result
 * is the same on any number of threads. Not here: taking the root, or scaling the gradients. */
#include "tinygpt.h"
#include "tinygpt_internal.h"

#define BLOCKS 64

static double block_sum_of_squares(const float *x, long n)
{
    double sum = 0.0;
    #pragma omp simd reduction(+:sum)
    for (long i = 0; i < n; i++) {
        double xi = x[i];
        sum += xi * xi;
    }
    return sum;
}

double sum_of_squares(const float *x, long n)
{
    double partial[BLOCKS];  /* partial[b]: block b = x[n*b/BLOCKS .. n*(b+1)/BLOCKS) */
    #pragma omp parallel for schedule(static) if (n >= 4 * TG_PARALLEL_MIN)
    for (int b = 0; b < BLOCKS; b++) {
        long lo = n * b / BLOCKS, hi = n * (b + 1) / BLOCKS;
        partial[b] = block_sum_of_squares(x + lo, hi - lo);
    }
    double total = 0.0;
    for (int b = 0; b < BLOCKS; b++) total += partial[b];
    return total;
}

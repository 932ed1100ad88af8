/* layernorm.c: out = (x - mean) / sqrt(var + eps) * w + b over the last axis, rows over threads.
 * Forward keeps xhat and rstd, exactly the reference's cache; backward's dw and db are sums over
 * rows, so each thread sums its own rows and the partial sums are added in thread order
 * (deterministic). Not here: the eps convention's why (tinygpt/ops/layernorm.py). */
#include <stdlib.h>
#include "tinygpt.h"
#include "tinygpt_internal.h"

/* one row r of layernorm_forward */
static inline void layernorm_row(float *out, float *xhat, float *rstd, const float *x,
                                 const float *w, const float *b, long r, int c, float eps)
{
    const float *xr = x + r * c;
    float *o = out + r * c, *xh = xhat + r * c;
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int j = 0; j < c; j++) sum += xr[j];
    float mean = sum / c;
    float ss = 0.0f;  /* two passes: var = mean((x - mean)^2) loses nothing to cancellation */
    #pragma omp simd reduction(+:ss)
    for (int j = 0; j < c; j++) ss += (xr[j] - mean) * (xr[j] - mean);
    float s = 1.0f / sqrtf(ss / c + eps);  /* eps inside the root, as in GPT-2 */
    rstd[r] = s;
    #pragma omp simd
    for (int j = 0; j < c; j++) {
        xh[j] = (xr[j] - mean) * s;
        o[j] = b ? xh[j] * w[j] + b[j] : xh[j] * w[j];
    }
}

void layernorm_forward(float *out, float *xhat, float *rstd, const float *x, const float *w,
                       const float *b, long rows, int c, float eps)
{
    if (rows * c < TG_PARALLEL_MIN || rows == 1) {
        /* NOTE: a plain loop, not `omp parallel for if (0)`, whose team of one doubled the
         * cost of a 128-wide decoding row (1.4 -> 0.8 us) */
        for (long r = 0; r < rows; r++) layernorm_row(out, xhat, rstd, x, w, b, r, c, eps);
        return;
    }
    #pragma omp parallel for schedule(dynamic, 16)
    for (long r = 0; r < rows; r++) layernorm_row(out, xhat, rstd, x, w, b, r, c, eps);
}

void layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *xhat,
                        const float *rstd, const float *w, long rows, int c)
{
    int threads = rows * c >= TG_PARALLEL_MIN && rows > 1 ? TG_MAX_THREADS() : 1;
    float *partial = calloc((size_t)threads * 2 * c, sizeof(float));  /* per thread: dw, db */
    #pragma omp parallel num_threads(threads)
    {
        int nt = TG_NUM_THREADS(), id = TG_THREAD_ID();
        float *pdw = partial + (long)id * 2 * c, *pdb = pdw + c;
        long r0 = rows * id / nt, r1 = rows * (id + 1) / nt;
        for (long r = r0; r < r1; r++) {
            const float *g = dout + r * c, *xh = xhat + r * c;
            float *d = dx + r * c;
            float sum = 0.0f, dot = 0.0f;  /* of dxhat = dout * w, and of dxhat * xhat */
            #pragma omp simd reduction(+:sum, dot)
            for (int j = 0; j < c; j++) {
                float dxh = g[j] * w[j];
                sum += dxh;
                dot += dxh * xh[j];
                pdw[j] += g[j] * xh[j];  /* out = xhat * w + b: dw = sum(dout * xhat) */
                pdb[j] += g[j];          /* db = sum(dout) */
            }
            /* dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
            float s = rstd[r], mean_sum = sum / c, mean_dot = dot / c;
            #pragma omp simd
            for (int j = 0; j < c; j++) d[j] = s * (g[j] * w[j] - mean_sum - xh[j] * mean_dot);
        }
    }
    for (int j = 0; j < c; j++) {
        float sw = 0.0f, sb = 0.0f;
        for (int t = 0; t < threads; t++) {
            sw += partial[(long)t * 2 * c + j];
            sb += partial[(long)t * 2 * c + c + j];
        }
        dw[j] = sw;
        if (db) db[j] = sb;
    }
    free(partial);
}

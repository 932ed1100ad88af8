/* softmax.c: softmax, log-softmax and cross-entropy along the last axis, one row at a time.
 * Each row: max (for the max-shift), sum of exp(x - max), then the output. `omp simd reduction`
 * lets the compiler sum in 8 lanes without -ffast-math, which the masked softmax cannot have:
 * -ffast-math assumes no inf, and a masked logit is -inf. Rows are split over threads.
 * Not here: attention's softmax, fused into attention.c. */
#include "tinygpt.h"
#include "tinygpt_internal.h"

static float row_max(const float *x, int v)
{
    float m = -INFINITY;
    #pragma omp simd reduction(max:m)
    for (int j = 0; j < v; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* out = exp(x - max), returns the sum of out */
static float exp_shifted(float *out, const float *x, float max, int v)
{
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int j = 0; j < v; j++) {
        out[j] = exp_approx(x[j] - max);
        sum += out[j];
    }
    return sum;
}

/* sum(exp(x - max)) without writing anything */
static float sum_exp_shifted(const float *x, float max, int v)
{
    float sum = 0.0f;
    #pragma omp simd reduction(+:sum)
    for (int j = 0; j < v; j++) sum += exp_approx(x[j] - max);
    return sum;
}

/* log(sum(exp(x - max))) + max = log(sum(exp(x))), never overflowing */
static float logsumexp(const float *x, float max, int v)
{
    return max + logf(sum_exp_shifted(x, max, v));
}

void softmax_forward(float *out, const float *x, long rows, int v)
{
    #pragma omp parallel for schedule(dynamic, 8) if (rows * v >= TG_PARALLEL_MIN && rows > 1)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * v;
        float *o = out + r * v;
        float inv = 1.0f / exp_shifted(o, xr, row_max(xr, v), v);
        #pragma omp simd
        for (int j = 0; j < v; j++) o[j] *= inv;
    }
}

void softmax_backward(float *dx, const float *dout, const float *out, long rows, int v)
{
    #pragma omp parallel for schedule(dynamic, 8) if (rows * v >= TG_PARALLEL_MIN && rows > 1)
    for (long r = 0; r < rows; r++) {
        const float *g = dout + r * v, *o = out + r * v;
        float *d = dx + r * v;
        /* dx_i = out_i (dout_i - sum_j dout_j out_j) */
        float dot = 0.0f;
        #pragma omp simd reduction(+:dot)
        for (int j = 0; j < v; j++) dot += g[j] * o[j];
        #pragma omp simd
        for (int j = 0; j < v; j++) d[j] = o[j] * (g[j] - dot);
    }
}

void log_softmax_forward(float *out, const float *x, long rows, int v)
{
    #pragma omp parallel for schedule(dynamic, 8) if (rows * v >= TG_PARALLEL_MIN && rows > 1)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * v;
        float *o = out + r * v;
        /* (x - max) - log(sum), not x - (max + log(sum)): with logits near 1e4, max + log(sum)
         * rounds to float32's spacing there (~1e-3) and every output would carry that error */
        float max = row_max(xr, v);
        float log_sum = logf(sum_exp_shifted(xr, max, v));
        #pragma omp simd
        for (int j = 0; j < v; j++) o[j] = (xr[j] - max) - log_sum;
    }
}

void log_softmax_backward(float *dx, const float *dout, const float *out, long rows, int v)
{
    #pragma omp parallel for schedule(dynamic, 8) if (rows * v >= TG_PARALLEL_MIN && rows > 1)
    for (long r = 0; r < rows; r++) {
        const float *g = dout + r * v, *o = out + r * v;
        float *d = dx + r * v;
        /* out = x - lse(x), and d lse / dx_j = softmax_j = exp(out_j) */
        float sum = 0.0f;
        #pragma omp simd reduction(+:sum)
        for (int j = 0; j < v; j++) sum += g[j];
        #pragma omp simd
        for (int j = 0; j < v; j++) d[j] = g[j] - exp_approx(o[j]) * sum;
    }
}

long cross_entropy_forward(float *losses, float *lse, const float *logits,
                           const long long *targets, long n, int v, long long ignore_index)
{
    long bad = 0;
    #pragma omp parallel for schedule(dynamic, 8) reduction(+:bad) if (n * v >= TG_PARALLEL_MIN && n > 1)
    for (long r = 0; r < n; r++) {
        const float *x = logits + r * v;
        lse[r] = logsumexp(x, row_max(x, v), v);
        long long t = targets[r];
        if (t == ignore_index) {
            losses[r] = 0.0f;
        } else if (t < 0 || t >= v) {
            losses[r] = NAN;
            bad++;
        } else {
            losses[r] = lse[r] - x[t];  /* -log softmax(x)[t], never forming the probabilities */
        }
    }
    return bad;
}

void cross_entropy_backward(float *dlogits, const float *logits, const float *lse,
                            const long long *targets, const float *scale, long n, int v,
                            long long ignore_index, int per_row)
{
    #pragma omp parallel for schedule(dynamic, 8) if (n * v >= TG_PARALLEL_MIN && n > 1)
    for (long r = 0; r < n; r++) {
        const float *x = logits + r * v;
        float *d = dlogits + r * v;
        long long t = targets[r];
        float s = per_row ? scale[r] : scale[0];
        if (t == ignore_index) {  /* an ignored row adds nothing: 0 * s keeps a nan scale nan */
            float zero = 0.0f * s;
            for (int j = 0; j < v; j++) d[j] = zero;
            continue;
        }
        /* loss = lse - x[t]: d/dx = softmax(x) - one_hot(t), softmax recomputed from lse */
        float l = lse[r];
        #pragma omp simd
        for (int j = 0; j < v; j++) d[j] = exp_approx(x[j] - l) * s;
        d[t] = (exp_approx(x[t] - l) - 1.0f) * s;
    }
}

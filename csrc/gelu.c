/* gelu.c: GPT-2's GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise, with a
 * tanh the compiler vectorises. Backward recomputes tanh rather than keeping it from forward.
 * Not here: the exact erf GELU (GPT-2 does not use it). */
#include "tinygpt.h"
#include "tinygpt_internal.h"

#define GELU_SCALE 0.7978845608028654f  /* sqrt(2 / pi) */
#define GELU_CUBIC 0.044715f

static inline float gelu(float xi)
{
    return 0.5f * xi * (1.0f + tanh_approx(GELU_SCALE * (xi + GELU_CUBIC * xi * xi * xi)));
}

/* out = 0.5 x (1 + t): d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) d(inner)/dx */
static inline float gelu_grad(float dout, float xi)
{
    float t = tanh_approx(GELU_SCALE * (xi + GELU_CUBIC * xi * xi * xi));
    float dinner = GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * xi * xi);
    return dout * (0.5f * (1.0f + t) + 0.5f * xi * (1.0f - t * t) * dinner);
}

/* NOTE: below the threshold, a plain loop rather than `omp parallel for simd if (0)`: that
 * construct's team of one cost ~3 us a call, 4x the work of a 512-wide decoding row. */
void gelu_forward(float *out, const float *x, long n)
{
    if (n < 4 * TG_PARALLEL_MIN) {
        #pragma omp simd
        for (long i = 0; i < n; i++) out[i] = gelu(x[i]);
        return;
    }
    #pragma omp parallel for simd schedule(simd: dynamic, 16384)
    for (long i = 0; i < n; i++) out[i] = gelu(x[i]);
}

void gelu_backward(float *dx, const float *dout, const float *x, long n)
{
    if (n < 4 * TG_PARALLEL_MIN) {  /* as in forward */
        #pragma omp simd
        for (long i = 0; i < n; i++) dx[i] = gelu_grad(dout[i], x[i]);
        return;
    }
    #pragma omp parallel for simd schedule(simd: dynamic, 16384)
    for (long i = 0; i < n; i++) dx[i] = gelu_grad(dout[i], x[i]);
}

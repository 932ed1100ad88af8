/* gelu.c: GPT-2's GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise, with a
 * tanh the compiler vectorises. Backward recomputes tanh rather than keeping it from forward.
 * Not here: the exact erf GELU (GPT-2 does not use it). */
#include "tinygpt.h"
#include "tinygpt_internal.h"

#define GELU_SCALE 0.7978845608028654f  /* sqrt(2 / pi) */
#define GELU_CUBIC 0.044715f

void gelu_forward(float *out, const float *x, long n)
{
    #pragma omp parallel for simd schedule(simd: dynamic, 16384) if (n >= 4 * TG_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float xi = x[i];
        float t = tanh_approx(GELU_SCALE * (xi + GELU_CUBIC * xi * xi * xi));
        out[i] = 0.5f * xi * (1.0f + t);
    }
}

void gelu_backward(float *dx, const float *dout, const float *x, long n)
{
    #pragma omp parallel for simd schedule(simd: dynamic, 16384) if (n >= 4 * TG_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float xi = x[i];
        float t = tanh_approx(GELU_SCALE * (xi + GELU_CUBIC * xi * xi * xi));
        /* out = 0.5 x (1 + t): d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) d(inner)/dx */
        float dinner = GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * xi * xi);
        dx[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * xi * (1.0f - t * t) * dinner);
    }
}

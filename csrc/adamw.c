/* adamw.c: one AdamW step in one pass over param, grad, m and v (the NumPy reference makes
 * about ten). Same float32 arithmetic in the same order as tinygpt/ops/adamw.py; the scalar
 * factors are computed once in double, as Python computes them, then rounded to float.
 * Not here: which parameters decay or the learning-rate schedule (tinygpt/optim.py). */
#include <math.h>
#include "tinygpt.h"
#include "tinygpt_internal.h"

void adamw_update(float *param, const float *grad, float *m, float *v, long n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, long step)
{
    const float decay = (float)(1.0 - lr * weight_decay);  /* decoupled: shrink param directly */
    const float b1 = (float)beta1, b2 = (float)beta2;
    const float one_minus_b1 = (float)(1.0 - beta1), one_minus_b2 = (float)(1.0 - beta2);
    /* bias correction: m and v start at 0, so early averages are too small by 1 - beta^step */
    const float m_scale = (float)(1.0 / (1.0 - pow(beta1, (double)step)));
    const float v_scale = (float)(1.0 / (1.0 - pow(beta2, (double)step)));
    const float lr_f = (float)lr, eps_f = (float)eps;
    const int decays = weight_decay != 0.0;
    #pragma omp parallel for simd schedule(simd: dynamic, 16384) if (n >= 4 * TG_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        float p = decays ? param[i] * decay : param[i];
        float g = grad[i];
        float mi = m[i] * b1 + one_minus_b1 * g;      /* running mean of the gradient */
        float vi = v[i] * b2 + one_minus_b2 * g * g;  /* running mean of its square */
        m[i] = mi;
        v[i] = vi;
        param[i] = p - lr_f * (mi * m_scale) / (sqrtf(vi * v_scale) + eps_f);
    }
}

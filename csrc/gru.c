/* gru.c: one GRU layer over a whole sequence, forward and backpropagation through time.
 * Laid out as lstm.c: the products that do not depend on the recurrence (x W_ih for every step;
 * dW_ih, dW_hh, dx) are single big sgemm calls, the recurrence is split by batch rows over the
 * threads, and W_hh (W_hh^T for backward) is packed once and reused by every step. Gate order
 * r, z, n as in PyTorch, the reset gate applied after h W_hn (Keras' reset_after=True).
 * Not here: Keras' reset_after=False, stacking layers, dropout, masks (tinygpt.keras composes those). */
#include <stdlib.h>
#include "tinygpt.h"
#include "tinygpt_internal.h"

/* rows [r0, r1) of `batch` for this thread; the whole batch on one thread when tiny */
#define THREAD_ROWS(batch, r0, r1) \
    long r0 = (long)(batch) * TG_THREAD_ID() / TG_NUM_THREADS(); \
    long r1 = (long)(batch) * (TG_THREAD_ID() + 1) / TG_NUM_THREADS()

void gru_forward(float *hs, float *gates, float *hn, const float *x, const float *w_ih,
                 const float *w_hh, const float *b_ih, const float *b_hh,
                 int batch, int steps, int in, int d)
{
    long g3 = 3L * d, rows = (long)batch * steps;
    /* xw_t = x_t W_ih + b_ih for every step at once; gates holds these until the step that
     * activates them in place */
    for (long r = 0; r < rows; r++) memcpy(gates + r * g3, b_ih, sizeof(float) * g3);
    sgemm((int)rows, (int)g3, in, x, in, 1, w_ih, g3, 1, gates, g3, 1);
    float *packed = tg_alloc(sgemm_packed_b_size(d, (int)g3));
    sgemm_pack_b(packed, d, (int)g3, w_hh, g3, 1);
    float *hw_all = tg_alloc((long)batch * g3);  /* (batch, 3d): h_{t-1} W_hh + b_hh of one step */
    int threaded = batch >= 2 && (long)batch * g3 * d >= 16L * 1024;
    #pragma omp parallel if (threaded)
    {
        THREAD_ROWS(batch, r0, r1);
        for (int t = 0; t < steps && r1 > r0; t++) {
            for (long r = r0; r < r1; r++) memcpy(hw_all + r * g3, b_hh, sizeof(float) * g3);
            /* hw = h_{t-1} W_hh + b_hh for this thread's rows */
            sgemm_serial_packed_b((int)(r1 - r0), (int)g3, d, hs + (r0 * (steps + 1) + t) * d,
                                  (long)(steps + 1) * d, 1, packed, hw_all + r0 * g3, g3, 1);
            for (long r = r0; r < r1; r++) {
                float *a = gates + (r * steps + t) * g3;  /* xw in, activated r, z, n out */
                const float *hw = hw_all + r * g3;
                const float *h_prev = hs + (r * (steps + 1) + t) * d;
                float *h_next = hs + (r * (steps + 1) + t + 1) * d;
                float *hn_t = hn + (r * steps + t) * d;
                #pragma omp simd
                for (int j = 0; j < d; j++) {
                    float rg = sigmoid_approx(a[j] + hw[j]);
                    float z = sigmoid_approx(a[d + j] + hw[d + j]);
                    float n = tanh_approx(a[2 * d + j] + rg * hw[2 * d + j]);
                    a[j] = rg; a[d + j] = z; a[2 * d + j] = n;
                    hn_t[j] = hw[2 * d + j];
                    h_next[j] = (1.0f - z) * n + z * h_prev[j];  /* h_t = (1 - z) n + z h_{t-1} */
                }
            }
        }
    }
    free(hw_all);
    free(packed);
}

void gru_backward(float *dx, float *dh0, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh,
                  const float *dout, const float *x, const float *w_ih, const float *w_hh,
                  const float *gates, const float *hs, const float *hn,
                  int batch, int steps, int in, int d)
{
    long g3 = 3L * d, rows = (long)batch * steps;
    float *dxw = tg_alloc(rows * g3);  /* (batch, steps, 3d): gradient of x W_ih + b_ih */
    float *dhw = tg_alloc(rows * g3);  /* (batch, steps, 3d): gradient of h W_hh + b_hh */
    float *packed_t = tg_alloc(sgemm_packed_b_size((int)g3, d));
    sgemm_pack_b(packed_t, (int)g3, d, w_hh, 1, g3);  /* W_hh^T, (3d, d): swapped strides */
    int threaded = batch >= 2 && (long)batch * g3 * d >= 16L * 1024;
    /* dh0 carries dh_next back through time and ends up as the answer */
    #pragma omp parallel if (threaded)
    {
        THREAD_ROWS(batch, r0, r1);
        for (int t = steps - 1; t >= 0 && r1 > r0; t--) {
            for (long r = r0; r < r1; r++) {
                const float *a = gates + (r * steps + t) * g3;
                const float *h_prev = hs + (r * (steps + 1) + t) * d;
                const float *hn_t = hn + (r * steps + t) * d;
                const float *g_out = dout ? dout + (r * steps + t) * d : NULL;
                float *dh_next = dh0 + r * d;
                float *dxw_t = dxw + (r * steps + t) * g3, *dhw_t = dhw + (r * steps + t) * g3;
                #pragma omp simd
                for (int j = 0; j < d; j++) {
                    float dh = g_out ? g_out[j] + dh_next[j] : dh_next[j];
                    float rg = a[j], z = a[d + j], n = a[2 * d + j];
                    /* h = (1 - z) n + z h_prev, n = tanh(xw_n + r hn), r, z = sigma(xw + hw) */
                    float da_n = dh * (1.0f - z) * (1.0f - n * n);
                    float da_r = da_n * hn_t[j] * rg * (1.0f - rg);
                    float da_z = dh * (h_prev[j] - n) * z * (1.0f - z);
                    dxw_t[j] = dhw_t[j] = da_r;
                    dxw_t[d + j] = dhw_t[d + j] = da_z;
                    dxw_t[2 * d + j] = da_n;
                    dhw_t[2 * d + j] = da_n * rg;
                    dh_next[j] = dh * z;  /* the direct path; the product through W_hh is added below */
                }
            }
            /* hw = h_prev W_hh + b_hh: dh_prev += dhw W_hh^T */
            sgemm_serial_packed_b((int)(r1 - r0), d, (int)g3, dhw + (r0 * steps + t) * g3,
                                  steps * g3, 1, packed_t, dh0 + r0 * d, d, 1);
        }
    }
    free(packed_t);
    /* the weight gradients sum over every step at once: one product each */
    float *h_prev = tg_alloc(rows * d);  /* hs[:, :-1] made contiguous, (batch * steps, d) */
    for (long bi = 0; bi < batch; bi++)
        memcpy(h_prev + bi * steps * d, hs + bi * (steps + 1) * d, sizeof(float) * steps * d);
    sgemm(d, (int)g3, (int)rows, h_prev, 1, d, dhw, g3, 1, dw_hh, g3, 0);
    free(h_prev);
    sgemm(in, (int)g3, (int)rows, x, 1, in, dxw, g3, 1, dw_ih, g3, 0);
    sgemm((int)rows, in, (int)g3, dxw, g3, 1, w_ih, 1, g3, dx, in, 0);  /* dx = dxw W_ih^T */
    memset(db_ih, 0, sizeof(float) * g3);
    memset(db_hh, 0, sizeof(float) * g3);
    for (long r = 0; r < rows; r++) {
        const float *gi = dxw + r * g3, *gh = dhw + r * g3;
        #pragma omp simd
        for (long j = 0; j < g3; j++) { db_ih[j] += gi[j]; db_hh[j] += gh[j]; }
    }
    free(dhw);
    free(dxw);
}

/* lstm.c: one LSTM layer over a whole sequence, forward and backpropagation through time.
 * The products that do not depend on the recurrence (x W_ih for every step; dW_ih, dW_hh, dx)
 * are single big sgemm calls. The recurrence itself is split by batch rows over the threads:
 * batch rows never interact, so each thread runs all its time steps without waiting for the
 * other. W_hh (and W_hh^T for backward) is packed once for the sgemm microkernel and reused by
 * every step. Gate order i, f, g, o as in PyTorch. Not here: stacking layers, dropout (nn). */
#include <stdlib.h>
#include "tinygpt.h"
#include "tinygpt_internal.h"

/* rows [r0, r1) of `batch` for this thread; the whole batch on one thread when tiny */
#define THREAD_ROWS(batch, r0, r1) \
    long r0 = (long)(batch) * TG_THREAD_ID() / TG_NUM_THREADS(); \
    long r1 = (long)(batch) * (TG_THREAD_ID() + 1) / TG_NUM_THREADS()

void lstm_forward(float *hs, float *cs, float *gates, float *tanh_c, const float *x,
                  const float *w_ih, const float *w_hh, const float *b,
                  int batch, int steps, int in, int d)
{
    long g4 = 4L * d, rows = (long)batch * steps;
    /* a_t = x_t W_ih + b for every step at once; gates holds these pre-activations until the
     * step that activates them in place */
    for (long r = 0; r < rows; r++) memcpy(gates + r * g4, b, sizeof(float) * g4);
    sgemm((int)rows, (int)g4, in, x, in, 1, w_ih, g4, 1, gates, g4, 1);
    float *packed = tg_alloc(sgemm_packed_b_size(d, (int)g4));
    sgemm_pack_b(packed, d, (int)g4, w_hh, g4, 1);
    int threaded = batch >= 2 && (long)batch * g4 * d >= 16L * 1024;
    #pragma omp parallel if (threaded)
    {
        THREAD_ROWS(batch, r0, r1);
        for (int t = 0; t < steps && r1 > r0; t++) {
            /* a_t += h_{t-1} W_hh for this thread's rows */
            sgemm_serial_packed_b((int)(r1 - r0), (int)g4, d, hs + (r0 * (steps + 1) + t) * d,
                                  (long)(steps + 1) * d, 1, packed,
                                  gates + (r0 * steps + t) * g4, steps * g4, 1);
            for (long r = r0; r < r1; r++) {
                float *a = gates + (r * steps + t) * g4;  /* pre-activations in, gates out */
                float *ai = a, *af = a + d, *ag = a + 2 * d, *ao = a + 3 * d;
                const float *c_prev = cs + (r * (steps + 1) + t) * d;
                float *c_next = cs + (r * (steps + 1) + t + 1) * d;
                float *h_next = hs + (r * (steps + 1) + t + 1) * d;
                float *tc = tanh_c + (r * steps + t) * d;
                #pragma omp simd
                for (int j = 0; j < d; j++) {
                    float i = sigmoid_approx(ai[j]), f = sigmoid_approx(af[j]);
                    float g = tanh_approx(ag[j]), o = sigmoid_approx(ao[j]);
                    float c = f * c_prev[j] + i * g;
                    float th = tanh_approx(c);
                    ai[j] = i; af[j] = f; ag[j] = g; ao[j] = o;
                    c_next[j] = c;
                    tc[j] = th;
                    h_next[j] = o * th;  /* h_t = o tanh(c_t) */
                }
            }
        }
    }
    free(packed);
}

void lstm_backward(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db,
                   const float *dout, const float *x, const float *w_ih, const float *w_hh,
                   const float *gates, const float *hs, const float *cs, const float *tanh_c,
                   int batch, int steps, int in, int d)
{
    long g4 = 4L * d, rows = (long)batch * steps;
    float *da_all = tg_alloc(rows * g4);  /* (batch, steps, 4d): gradient of the pre-activations */
    float *packed_t = tg_alloc(sgemm_packed_b_size((int)g4, d));
    sgemm_pack_b(packed_t, (int)g4, d, w_hh, 1, g4);  /* W_hh^T, (4d, d): swapped strides */
    int threaded = batch >= 2 && (long)batch * g4 * d >= 16L * 1024;
    /* dh0 and dc0 carry dh_next and dc_next back through time and end up as the answer */
    #pragma omp parallel if (threaded)
    {
        THREAD_ROWS(batch, r0, r1);
        for (int t = steps - 1; t >= 0 && r1 > r0; t--) {
            for (long r = r0; r < r1; r++) {
                const float *a = gates + (r * steps + t) * g4;
                const float *c_prev = cs + (r * (steps + 1) + t) * d;
                const float *tc = tanh_c + (r * steps + t) * d;
                const float *g_out = dout ? dout + (r * steps + t) * d : NULL;
                float *dh_next = dh0 + r * d, *dc_next = dc0 + r * d;
                float *da = da_all + (r * steps + t) * g4;
                #pragma omp simd
                for (int j = 0; j < d; j++) {
                    float dh = g_out ? g_out[j] + dh_next[j] : dh_next[j];
                    float i = a[j], f = a[d + j], g = a[2 * d + j], o = a[3 * d + j];
                    /* h = o tanh(c): c receives dh o (1 - tanh^2) on top of what t+1 sent */
                    float dc = dc_next[j] + dh * o * (1.0f - tc[j] * tc[j]);
                    /* c = f c_prev + i g, through sigma' = sigma (1 - sigma), tanh' = 1 - tanh^2 */
                    da[j] = dc * g * i * (1.0f - i);
                    da[d + j] = dc * c_prev[j] * f * (1.0f - f);
                    da[2 * d + j] = dc * i * (1.0f - g * g);
                    da[3 * d + j] = dh * tc[j] * o * (1.0f - o);
                    dc_next[j] = dc * f;
                }
            }
            /* a = ... + h_prev W_hh: dh_prev = da W_hh^T */
            sgemm_serial_packed_b((int)(r1 - r0), d, (int)g4, da_all + (r0 * steps + t) * g4,
                                  steps * g4, 1, packed_t, dh0 + r0 * d, d, 0);
        }
    }
    free(packed_t);
    /* the weight gradients sum over every step at once: one product each */
    float *h_prev = tg_alloc(rows * d);  /* hs[:, :-1] made contiguous, (batch * steps, d) */
    for (long bi = 0; bi < batch; bi++)
        memcpy(h_prev + bi * steps * d, hs + bi * (steps + 1) * d, sizeof(float) * steps * d);
    sgemm(d, (int)g4, (int)rows, h_prev, 1, d, da_all, g4, 1, dw_hh, g4, 0);
    free(h_prev);
    sgemm(in, (int)g4, (int)rows, x, 1, in, da_all, g4, 1, dw_ih, g4, 0);
    sgemm((int)rows, in, (int)g4, da_all, g4, 1, w_ih, 1, g4, dx, in, 0);  /* dx = da W_ih^T */
    memset(db, 0, sizeof(float) * g4);
    for (long r = 0; r < rows; r++) {
        const float *da = da_all + r * g4;
        #pragma omp simd
        for (long j = 0; j < g4; j++) db[j] += da[j];
    }
    free(da_all);
}

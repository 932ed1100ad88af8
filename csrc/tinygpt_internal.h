/* tinygpt_internal.h: what the kernels share and Python never sees: exp, tanh and sigmoid that
 * the compiler can vectorise (libm's expf and tanhf are calls it cannot), and sgemm's serial entry
 * points for kernels that run their own threads (attention, LSTM), the 8-wide vector type, and the
 * scratch allocator. Not the cffi cdef (tinygpt.h). */
#ifndef TINYGPT_INTERNAL_H
#define TINYGPT_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define TG_MAX_THREADS() omp_get_max_threads()
#define TG_THREAD_ID() omp_get_thread_num()
#define TG_NUM_THREADS() omp_get_num_threads()
#else
#define TG_MAX_THREADS() 1
#define TG_THREAD_ID() 0
#define TG_NUM_THREADS() 1
#endif

/* Below this much work (in floats touched) a row-wise kernel runs on one thread: waking the
 * second costs a few microseconds, more than it saves. */
#define TG_PARALLEL_MIN 32768L

/* GCC/Clang vector extension: 8 floats that compile to one AVX register (or two SSE ones).
 * load8/store8 go through memcpy, so they need no alignment and compile to one unaligned move. */
typedef float f32x8 __attribute__((vector_size(32)));

static inline f32x8 load8(const float *p) { f32x8 v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, f32x8 v) { memcpy(p, &v, sizeof v); }

static inline float bits_to_float(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);  /* the portable bit cast; compiles to nothing */
    return f;
}

/* exp(x) to ~1 ulp, branch-free so that a loop over it vectorises.
 * exp(x) = 2^n exp(r) with n = round(x / ln 2) and r = x - n ln 2 in [-ln2/2, ln2/2], where a
 * degree-6 polynomial (Cephes' expf) is accurate; 2^n is built straight into the exponent bits.
 * NOTE: the masked softmax needs exp(-inf) = 0 exactly and nan to stay nan, hence the selects at
 * the end; x > 88.37 (where 2^n would leave the float range) gives inf a little early. */
static inline float exp_approx(float x)
{
    float xc = x < -87.3f ? -87.3f : (x > 88.37f ? 88.37f : x);
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round to nearest */
    float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;  /* ln 2 in two parts (Cody-Waite) */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float y = p * bits_to_float(((int32_t)n + 127) << 23);
    y = x < -87.3f ? 0.0f : y;
    y = x > 88.37f ? INFINITY : y;
    return x != x ? x : y;
}

/* tanh(x) = x P(x^2) / Q(x^2), Eigen's rational fit on [-7.9, 7.9] (beyond it tanh is 1 in
 * float32); relative error ~1e-7 even near 0, where 1 - 2 / (exp(2x) + 1) would cancel. */
static inline float tanh_approx(float x)
{
    const float clamp = 7.90531110763549805f;
    float xc = x < -clamp ? -clamp : (x > clamp ? clamp : x);
    float x2 = xc * xc;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return xc * p / q;
}

/* sigmoid(x) = 1 / (1 + exp(-x)): exp(-x) = inf for x << 0 gives exactly 0, no nan */
static inline float sigmoid_approx(float x)
{
    return 1.0f / (1.0f + exp_approx(-x));
}

static inline long min_long(long a, long b) { return a < b ? a : b; }
static inline long max_long(long a, long b) { return a > b ? a : b; }

/* sgemm.c, for callers that already run inside their own OpenMP team: single-threaded. */
void sgemm_serial(int m, int n, int k, const float *a, long rsa, long csa,
                  const float *b, long rsb, long csb, float *c, long rsc, int accumulate);

/* B packed once and reused by many products (the LSTM's W_hh, every time step). */
long sgemm_packed_b_size(int k, int n);  /* in floats */
void sgemm_pack_b(float *packed, int k, int n, const float *b, long rsb, long csb);
void sgemm_serial_packed_b(int m, int n, int k, const float *a, long rsa, long csa,
                           const float *packed_b, float *c, long rsc, int accumulate);

/* runtime.c: 64-byte aligned scratch memory, freed with free() */
float *tg_alloc(long count);

#endif

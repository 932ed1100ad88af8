/* skinny.c: C = A B when A has only a few rows (one decoding step of a small batch: m <= 16).
 * sgemm packs B into panels before multiplying, which costs more than the whole product when m is
 * 8; here B is read once, in place, in whichever order its layout makes contiguous. The product
 * reads every weight once for 2m flops, so it is limited by memory bandwidth, not arithmetic.
 * Not here: large m (sgemm.c), accumulation into C, a strided A (the wrapper makes A contiguous). */
#include "tinygpt.h"
#include <stdlib.h>
#include "tinygpt_internal.h"

#define ROWS 4    /* rows of A per pass */
#define PAIR 2    /* rows of A per pass in the row-major case: 2 x 8 accumulators + 1 of B */
#define COLS 48   /* columns of B per block in the row-major case: six 8-wide vectors */

/* Below this many floats of B one thread does the product: waking the second costs more than
 * it saves on a small weight (a 128-wide model's), and far more on a busy machine. */
#define SKINNY_PARALLEL_MIN (1L << 19)

static const float ZEROS[1] = {0.0f};

/* c[i0:i0+2, j0:j0+8*nv] = a[i0:i0+2] @ b[:, j0:j0+8*nv] (one row when i0 + 1 == m): walks
 * down B's k rows, reading 8*nv contiguous floats of each. nv is a constant at every call, so
 * the accumulators live in registers. A row past m reads a zero (stride 0): the loop is fixed. */
static inline void rowmajor_block(int nv, int m, int i0, long j0, int k, const float *a, long rsa,
                                  const float *b, long rsb, float *c, long rsc)
{
    const float *a0 = a + (long)i0 * rsa;
    const float *a1 = i0 + 1 < m ? a0 + rsa : ZEROS;
    long s1 = i0 + 1 < m ? 1 : 0;
    f32x8 acc0[COLS / 8], acc1[COLS / 8];
    memset(acc0, 0, sizeof acc0);
    memset(acc1, 0, sizeof acc1);
    for (int p = 0; p < k; p++) {
        const float *bp = b + (long)p * rsb + j0;
        float x0 = a0[p], x1 = a1[p * s1];
        for (int v = 0; v < nv; v++) {
            f32x8 bv = load8(bp + 8 * v);
            acc0[v] += x0 * bv;
            acc1[v] += x1 * bv;
        }
    }
    for (int v = 0; v < nv; v++) {
        store8(c + (long)i0 * rsc + j0 + 8 * v, acc0[v]);
        if (i0 + 1 < m)
            store8(c + (long)(i0 + 1) * rsc + j0 + 8 * v, acc1[v]);
    }
}

/* B row-major (csb == 1), e.g. a Linear weight (in, out): each thread owns blocks of COLS
 * columns and fills them PAIR rows of A at a time; a block of B (k x 48) stays in L2 for the next
 * pair. Columns past the last whole block go 8 at a time, then the last n % 8 one by one. */
static void skinny_rowmajor(int m, int n, int k, const float *a, long rsa, const float *b,
                            long rsb, float *c, long rsc)
{
    long blocks = n / COLS, vectors = (n - blocks * COLS) / 8;
#pragma omp parallel for schedule(static) if ((long)k * n > SKINNY_PARALLEL_MIN)
    for (long blk = 0; blk < blocks + vectors; blk++) {
        for (int i0 = 0; i0 < m; i0 += PAIR) {
            if (blk < blocks)
                rowmajor_block(COLS / 8, m, i0, blk * COLS, k, a, rsa, b, rsb, c, rsc);
            else
                rowmajor_block(1, m, i0, blocks * COLS + (blk - blocks) * 8, k, a, rsa, b, rsb, c, rsc);
        }
    }
    long j1 = blocks * COLS + vectors * 8;
    for (int i = 0; i < m; i++) {  /* the last n % 8 columns */
        float s[8] = {0};
        for (int p = 0; p < k; p++)
            for (long j = j1; j < n; j++)
                s[j - j1] += a[(long)i * rsa + p] * b[(long)p * rsb + j];
        for (long j = j1; j < n; j++)
            c[(long)i * rsc + j] = s[j - j1];
    }
}

/* One row of A and a row-major B: each thread takes a contiguous range of B's rows and streams
 * them whole (the order memory prefetching likes best), adding a[0, p] * b[p, :] into a row of
 * partial sums; the partial rows are added at the end. */
static void skinny_onerow(int n, int k, const float *a, const float *b, long rsb, float *c)
{
    int threads = (long)k * n > SKINNY_PARALLEL_MIN ? TG_MAX_THREADS() : 1;
    float *partial = threads > 1 ? tg_alloc((long)(threads - 1) * n) : NULL;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = TG_THREAD_ID(), nt = TG_NUM_THREADS();
        float *restrict acc = t == 0 ? c : partial + (long)(t - 1) * n;
        for (long j = 0; j < n; j++)
            acc[j] = 0.0f;
        for (long p = (long)k * t / nt; p < (long)k * (t + 1) / nt; p++) {
            const float *restrict bp = b + p * rsb;
            float x = a[p];
            for (long j = 0; j < n; j++)
                acc[j] += x * bp[j];
        }
    }
    for (int t = 1; t < threads; t++)
        for (long j = 0; j < n; j++)
            c[j] += partial[(long)(t - 1) * n + j];
    free(partial);
}

/* B column-major (rsb == 1), e.g. the tied head wte.T: column j of B is row j of wte, k
 * contiguous floats, so c[i, j] is a dot product of two contiguous rows; each thread owns a
 * range of columns, and each column is read once for all m rows. */
static void skinny_colmajor(int m, int n, int k, const float *a, long rsa, const float *b,
                            long csb, float *c, long rsc)
{
    int k8 = k - k % 8;
#pragma omp parallel for schedule(static) if ((long)k * n > SKINNY_PARALLEL_MIN)
    for (long j = 0; j < n; j++) {
        const float *bj = b + j * csb;
        for (int i0 = 0; i0 < m; i0 += ROWS) {
            int rows = m - i0 < ROWS ? m - i0 : ROWS;
            f32x8 acc[ROWS];
            memset(acc, 0, sizeof acc);
            for (int p = 0; p < k8; p += 8) {
                f32x8 bv = load8(bj + p);
                for (int r = 0; r < rows; r++)
                    acc[r] += load8(a + (long)(i0 + r) * rsa + p) * bv;
            }
            for (int r = 0; r < rows; r++) {
                const float *ai = a + (long)(i0 + r) * rsa;
                float s = 0.0f;
                for (int q = 0; q < 8; q++)
                    s += acc[r][q];
                for (int p = k8; p < k; p++)
                    s += ai[p] * bj[p];
                c[(long)(i0 + r) * rsc + j] = s;
            }
        }
    }
}

void sgemm_skinny(int m, int n, int k, const float *a, long rsa, const float *b, long rsb,
                  long csb, float *c, long rsc)
{
    if (csb == 1 && m == 1)
        skinny_onerow(n, k, a, b, rsb, c);
    else if (csb == 1)
        skinny_rowmajor(m, n, k, a, rsa, b, rsb, c, rsc);
    else
        skinny_colmajor(m, n, k, a, rsa, b, csb, c, rsc);
}

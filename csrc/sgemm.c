/* sgemm.c: C = A B in float32, the GotoBLAS/BLIS way: five loops around a register-blocked
 * microkernel, with A and B copied ("packed") into cache-sized blocks laid out in exactly the
 * order the microkernel reads them. Any strides, so transposed operands cost nothing extra.
 * Also matmul_forward/backward on top of it. Not here: complex or double precision, alpha/beta
 * beyond "overwrite or accumulate". sgemm_naive at the end is the three-loop definition the blocked
 * version is tested against. See docs/kernels.md for the why of every number below. */
#include <stdlib.h>
#include "tinygpt.h"
#include "tinygpt_internal.h"

/* The microkernel computes an MR x NR tile of C in registers: 6 rows x 16 columns are 12 8-wide
 * accumulators, plus 2 for a row of B and 1 for a broadcast of A: 15 of AVX2's 16 registers. */
#define MR 6
#define NR 16
#ifndef KC
#define KC 384   /* a KC x NR micro-panel of packed B is 24 KiB: it stays in the 32 KiB L1 */
#endif
#ifndef MC
#define MC 144   /* an MC x KC block of packed A is 216 KiB: it stays in a 512 KiB L2 */
#endif
#define NC 4080  /* a KC x NC block of packed B is 6 MiB: it stays in the shared L3 */

/* The depth of loop 4's slices: the fewest slices of at most KC, all of one depth (1000 = 3 x 334,
 * not 384 + 384 + 232). Every slice after the first reads and writes all of C again, and KC = 384
 * rather than 256 writes GPT-2's (B*T, 50257) logits twice instead of three times. */
static int slice_depth(int k)
{
    int slices = (k + KC - 1) / KC;
    return (k + slices - 1) / slices;
}

/* Below this many multiply-adds a product runs on one thread. */
#define PARALLEL_MIN_FLOPS (64L * 64 * 64)

/* Per-thread packing buffers, grown on demand and kept: a product allocates nothing. */
static _Thread_local float *a_buffer, *b_buffer;
static _Thread_local long a_capacity, b_capacity;

static float *thread_buffer(float **buffer, long *capacity, long count)
{
    if (count > *capacity) {
        free(*buffer);
        *buffer = tg_alloc(count);
        *capacity = count;
    }
    return *buffer;
}

/* Pack an (mc, kc) block of A as row panels of MR: panel[p * MR + i] = A[i, p]; rows past mc
 * are zero, so the microkernel never needs to know it is on an edge. The two layouts a GPT step
 * has get their own loops, with constant strides: a transposed A (x^T in dW = x^T dout, rsa == 1)
 * copies MR contiguous floats per p; a row-major A (csa == 1) reads MR rows side by side. */
static void pack_a(float *restrict dst, int mc, int kc, const float *a, long rsa, long csa)
{
    for (int i0 = 0; i0 < mc; i0 += MR) {
        int mr = mc - i0 < MR ? mc - i0 : MR;
        const float *src = a + i0 * rsa;
        if (mr == MR && rsa == 1) {
            for (int p = 0; p < kc; p++, dst += MR) memcpy(dst, src + p * csa, MR * sizeof(float));
        } else if (mr == MR && csa == 1) {
            const float *r0 = src, *r1 = src + rsa, *r2 = src + 2 * rsa, *r3 = src + 3 * rsa,
                        *r4 = src + 4 * rsa, *r5 = src + 5 * rsa;
            for (int p = 0; p < kc; p++, dst += MR) {
                dst[0] = r0[p]; dst[1] = r1[p]; dst[2] = r2[p];
                dst[3] = r3[p]; dst[4] = r4[p]; dst[5] = r5[p];
            }
        } else {
            for (int p = 0; p < kc; p++, dst += MR) {
                for (int i = 0; i < mr; i++) dst[i] = src[i * rsa + p * csa];
                for (int i = mr; i < MR; i++) dst[i] = 0.0f;
            }
        }
    }
}

/* 8 x 8 transpose in registers: r[i][j] -> r[j][i], in three rounds of two-source shuffles
 * (pairs, then quads, then 128-bit halves), each of which compiles to one AVX instruction. */
typedef int32_t i32x8 __attribute__((vector_size(32)));

static inline void transpose8x8(f32x8 r[8])
{
    f32x8 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {  /* t: interleave rows 2i and 2i+1 within each 128-bit lane */
        t[i] = __builtin_shuffle(r[i], r[i + 1], (i32x8){0, 8, 1, 9, 4, 12, 5, 13});
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], (i32x8){2, 10, 3, 11, 6, 14, 7, 15});
    }
    for (int i = 0; i < 8; i += 4)
        for (int h = 0; h < 2; h++) {  /* u: pairs of pairs */
            u[i + 2 * h] = __builtin_shuffle(t[i + h], t[i + h + 2], (i32x8){0, 1, 8, 9, 4, 5, 12, 13});
            u[i + 2 * h + 1] = __builtin_shuffle(t[i + h], t[i + h + 2], (i32x8){2, 3, 10, 11, 6, 7, 14, 15});
        }
    for (int i = 0; i < 4; i++) {  /* the low halves of rows i and i+4, then the high halves */
        r[i] = __builtin_shuffle(u[i], u[i + 4], (i32x8){0, 1, 2, 3, 8, 9, 10, 11});
        r[i + 4] = __builtin_shuffle(u[i], u[i + 4], (i32x8){4, 5, 6, 7, 12, 13, 14, 15});
    }
}

/* The rows of a row-major B that pack_b copies into every panel before moving on to the next
 * rows: 16 rows are 16 sequential read streams, and 1 KiB written per panel. */
#define PACK_B_ROWS 16

/* Pack a (kc, nc) block of B as column panels of NR: panel[p * NR + j] = B[p, j]. A row-major B
 * (W in x W) copies NR contiguous floats per p, PACK_B_ROWS rows across all panels at a time:
 * going panel by panel instead reads each of the kc rows (N floats apart, on kc different pages)
 * for only NR floats before the next panel comes back to the same pages. A transposed B (W^T in
 * dx = dout W^T, rsb == 1) has each column contiguous: 8 p of 8 columns at a time are loaded as
 * 8 vectors and transposed. */
static void pack_b(float *restrict dst, int kc, int nc, const float *b, long rsb, long csb)
{
    int j_rows = 0;  /* columns packed by the row-major loop below: its whole panels */
    if (csb == 1) {
        j_rows = nc / NR * NR;
        for (int p0 = 0; p0 < kc; p0 += PACK_B_ROWS) {
            int p1 = kc - p0 < PACK_B_ROWS ? kc : p0 + PACK_B_ROWS;
            for (int j0 = 0; j0 < j_rows; j0 += NR) {
                float *panel = dst + (long)j0 * kc;
                for (int p = p0; p < p1; p++)
                    memcpy(panel + p * NR, b + p * rsb + j0, NR * sizeof(float));
            }
        }
        dst += (long)j_rows * kc;
    }
    for (int j0 = j_rows; j0 < nc; j0 += NR) {
        int nr = nc - j0 < NR ? nc - j0 : NR;
        const float *src = b + j0 * csb;
        int p = 0;
        if (rsb == 1 && nr == NR) {
            for (; p + 8 <= kc; p += 8)
                for (int h = 0; h < NR; h += 8) {  /* columns h..h+7, rows p..p+7 */
                    f32x8 r[8];
                    for (int j = 0; j < 8; j++) r[j] = load8(src + (h + j) * csb + p);
                    transpose8x8(r);
                    for (int q = 0; q < 8; q++) store8(dst + (p + q) * NR + h, r[q]);
                }
        }
        for (; p < kc; p++) {  /* any strides, edge panels, and the kc % 8 rows left */
            const float *row = src + p * rsb;
            for (int j = 0; j < nr; j++) dst[p * NR + j] = row[j * csb];
            for (int j = nr; j < NR; j++) dst[p * NR + j] = 0.0f;
        }
        dst += (long)kc * NR;
    }
}

/* C[0:mr, 0:nr] (+)= A_panel B_panel over kc: the only place where the flops happen.
 * Each step of p is an outer product: one row of B (2 vectors) times 6 broadcast values of A. */
static void microkernel(int kc, const float *restrict a, const float *restrict b,
                        float *restrict c, long rsc, int mr, int nr, int accumulate)
{
    f32x8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    f32x8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    for (int i = 0; i < mr; i++) __builtin_prefetch(c + i * rsc, 1);  /* C arrives during the loop */
    #pragma GCC unroll 4
    for (int p = 0; p < kc; p++) {
        f32x8 b0 = *(const f32x8 *)b, b1 = *(const f32x8 *)(b + 8);  /* packed: 32-byte aligned */
        c00 += a[0] * b0; c01 += a[0] * b1;
        c10 += a[1] * b0; c11 += a[1] * b1;
        c20 += a[2] * b0; c21 += a[2] * b1;
        c30 += a[3] * b0; c31 += a[3] * b1;
        c40 += a[4] * b0; c41 += a[4] * b1;
        c50 += a[5] * b0; c51 += a[5] * b1;
        a += MR;
        b += NR;
    }
    f32x8 tile[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (mr == MR && nr == NR) {
        for (int i = 0; i < MR; i++) {
            float *row = c + i * rsc;
            if (accumulate) {
                tile[i][0] += load8(row);
                tile[i][1] += load8(row + 8);
            }
            store8(row, tile[i][0]);
            store8(row + 8, tile[i][1]);
        }
    } else {  /* an edge tile: only part of the register tile belongs to C */
        float t[MR * NR];
        for (int i = 0; i < MR; i++) {
            store8(t + i * NR, tile[i][0]);
            store8(t + i * NR + 8, tile[i][1]);
        }
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++)
                c[i * rsc + j] = accumulate ? c[i * rsc + j] + t[i * NR + j] : t[i * NR + j];
    }
}

/* Loops 2 and 1 around the microkernel: every MR x NR tile of an (mc, nc) block of C. */
static void macro_kernel(int mc, int nc, int kc, const float *pa, const float *pb,
                         float *c, long rsc, int accumulate)
{
    for (int j = 0; j < nc; j += NR)
        for (int i = 0; i < mc; i += MR)
            microkernel(kc, pa + (long)i * kc, pb + (long)j * kc, c + i * rsc + j, rsc,
                        mc - i < MR ? mc - i : MR, nc - j < NR ? nc - j : NR, accumulate);
}

static void zero_or_keep(int m, int n, float *c, long rsc, int accumulate)
{
    if (!accumulate)
        for (int i = 0; i < m; i++) memset(c + i * rsc, 0, n * sizeof(float));
}

void sgemm_serial(int m, int n, int k, const float *a, long rsa, long csa,
                  const float *b, long rsb, long csb, float *c, long rsc, int accumulate)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { zero_or_keep(m, n, c, rsc, accumulate); return; }
    int depth = slice_depth(k);
    float *pa = thread_buffer(&a_buffer, &a_capacity, (long)MC * KC);
    float *pb = thread_buffer(&b_buffer, &b_capacity,
                              (long)KC * ((n < NC ? n : NC) + NR - 1) / NR * NR);
    for (int jc = 0; jc < n; jc += NC) {           /* loop 5: NC columns of B and C */
        int nc = n - jc < NC ? n - jc : NC;
        for (int pc = 0; pc < k; pc += depth) {    /* loop 4: depth-deep slices of A and B */
            int kc = k - pc < depth ? k - pc : depth;
            pack_b(pb, kc, nc, b + pc * rsb + jc * csb, rsb, csb);
            for (int ic = 0; ic < m; ic += MC) {   /* loop 3: MC rows of A and C */
                int mc = m - ic < MC ? m - ic : MC;
                pack_a(pa, mc, kc, a + ic * rsa + pc * csa, rsa, csa);
                macro_kernel(mc, nc, kc, pa, pb, c + ic * rsc + jc, rsc, accumulate || pc > 0);
            }
        }
    }
}

void sgemm(int m, int n, int k, const float *a, long rsa, long csa,
           const float *b, long rsb, long csb, float *c, long rsc, int accumulate)
{
    int threads = TG_MAX_THREADS();
    if (threads == 1 || (long)m * n * k < PARALLEL_MIN_FLOPS || (m < 2 * MR && n < 2 * NR)) {
        sgemm_serial(m, n, k, a, rsa, csa, b, rsb, csb, c, rsc, accumulate);
        return;
    }
    /* Split C into one slab per thread along its longer side, in whole microkernel tiles; each
     * thread packs its own copies, so the threads never wait for each other. */
    int split_n = n >= m;
    int tile = split_n ? NR : MR;
    int tiles = ((split_n ? n : m) + tile - 1) / tile;
    #pragma omp parallel num_threads(threads)
    {
        int nt = TG_NUM_THREADS(), id = TG_THREAD_ID();
        int t0 = (int)((long)tiles * id / nt), t1 = (int)((long)tiles * (id + 1) / nt);
        int lo = t0 * tile, hi = t1 * tile;
        if (split_n) {
            hi = hi < n ? hi : n;
            if (hi > lo)
                sgemm_serial(m, hi - lo, k, a, rsa, csa, b + lo * csb, rsb, csb, c + lo, rsc,
                             accumulate);
        } else {
            hi = hi < m ? hi : m;
            if (hi > lo)
                sgemm_serial(hi - lo, n, k, a + lo * rsa, rsa, csa, b, rsb, csb, c + lo * rsc,
                             rsc, accumulate);
        }
    }
}

/* Pre-packed B: the slices one after another, each as sgemm_serial would pack it. */
long sgemm_packed_b_size(int k, int n)
{
    return (long)k * ((n + NR - 1) / NR * NR);
}

void sgemm_pack_b(float *packed, int k, int n, const float *b, long rsb, long csb)
{
    long panels = (n + NR - 1) / NR;
    int depth = slice_depth(k);
    for (int pc = 0; pc < k; pc += depth) {
        int kc = k - pc < depth ? k - pc : depth;
        pack_b(packed + pc * panels * NR, kc, n, b + pc * rsb, rsb, csb);
    }
}

void sgemm_serial_packed_b(int m, int n, int k, const float *a, long rsa, long csa,
                           const float *packed_b, float *c, long rsc, int accumulate)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { zero_or_keep(m, n, c, rsc, accumulate); return; }
    long panels = (n + NR - 1) / NR;
    int depth = slice_depth(k);
    float *pa = thread_buffer(&a_buffer, &a_capacity, (long)MC * KC);
    for (int pc = 0; pc < k; pc += depth) {
        int kc = k - pc < depth ? k - pc : depth;
        for (int ic = 0; ic < m; ic += MC) {
            int mc = m - ic < MC ? m - ic : MC;
            pack_a(pa, mc, kc, a + ic * rsa + pc * csa, rsa, csa);
            macro_kernel(mc, n, kc, pa, packed_b + pc * panels * NR, c + ic * rsc, rsc,
                         accumulate || pc > 0);
        }
    }
}

/* ---- matmul: the op that the Linear layer and every batched product call ---- */

void matmul_forward(float *out, const float *a, const float *b,
                    int batch, int m, int k, int n, int b_batched)
{
    if (!b_batched) {  /* (batch, m, k) @ (k, n) is one (batch * m, k) @ (k, n) product */
        sgemm(batch * m, n, k, a, k, 1, b, n, 1, out, n, 0);
        return;
    }
    int threads = TG_MAX_THREADS();
    if (batch >= 2 * threads || batch % threads == 0) {  /* whole products per thread */
        #pragma omp parallel for schedule(dynamic) num_threads(threads) if ((long)batch * m * n * k >= PARALLEL_MIN_FLOPS)
        for (int i = 0; i < batch; i++)
            sgemm_serial(m, n, k, a + (long)i * m * k, k, 1, b + (long)i * k * n, n, 1,
                         out + (long)i * m * n, n, 0);
    } else {
        for (int i = 0; i < batch; i++)
            sgemm(m, n, k, a + (long)i * m * k, k, 1, b + (long)i * k * n, n, 1,
                  out + (long)i * m * n, n, 0);
    }
}

void matmul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                     int batch, int m, int k, int n, int b_batched)
{
    /* out = a @ b, so da = dout @ b^T and db = a^T @ dout: the transposes are swapped strides */
    if (!b_batched) {
        long rows = (long)batch * m;
        sgemm((int)rows, k, n, dout, n, 1, b, 1, n, da, k, 0);
        /* db sums over the batch: a^T (k, batch*m) @ dout (batch*m, n) in one product */
        sgemm(k, n, (int)rows, a, 1, k, dout, n, 1, db, n, 0);
        return;
    }
    int threads = TG_MAX_THREADS();
    int per_thread = batch >= 2 * threads || batch % threads == 0;
    #pragma omp parallel for schedule(dynamic) num_threads(threads) if (per_thread && (long)batch * m * n * k >= PARALLEL_MIN_FLOPS)
    for (int i = 0; i < batch; i++) {
        const float *ai = a + (long)i * m * k, *bi = b + (long)i * k * n;
        const float *gi = dout + (long)i * m * n;
        if (per_thread) {
            sgemm_serial(m, k, n, gi, n, 1, bi, 1, n, da + (long)i * m * k, k, 0);
            sgemm_serial(k, n, m, ai, 1, k, gi, n, 1, db + (long)i * k * n, n, 0);
        } else {
            sgemm(m, k, n, gi, n, 1, bi, 1, n, da + (long)i * m * k, k, 0);
            sgemm(k, n, m, ai, 1, k, gi, n, 1, db + (long)i * k * n, n, 0);
        }
    }
}

/* ---- the definition: what sgemm computes, in three loops, for tests to compare against ---- */

void sgemm_naive(int m, int n, int k, const float *a, long rsa, long csa,
                 const float *b, long rsb, long csb, float *c, long rsc, int accumulate)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int p = 0; p < k; p++) sum += a[i * rsa + p * csa] * b[p * rsb + j * csb];
            c[i * rsc + j] = accumulate ? c[i * rsc + j] + sum : sum;
        }
}

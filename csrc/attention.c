/* attention.c: fused causal attention, FlashAttention-style (Dao et al. 2022, and its v2 loop
 * order). Per (batch, head), queries are processed in tiles of BQ rows against tiles of BK keys:
 * S = Q K^T * scale, then an online softmax keeps each row's running max m and running sum l, and
 * rescales the output accumulated so far whenever m grows. Only out and lse = m + log l per row
 * are stored, never the (T, T) matrix P. Backward recomputes P = exp(S - lse) tile by tile.
 * A key_mask hides padding keys as the causal mask hides the future. Dropout on the probabilities
 * keeps element (h, i, j) when splitmix64(seed, its flat index) clears a threshold, the same hash
 * as tinygpt/ops/attention.py, so backward recomputes the mask instead of storing it.
 * One (batch, head) per thread at a time. Not here: q, k, v projections (models/gpt.py). */
#include <stdlib.h>
#include "tinygpt.h"
#include "tinygpt_internal.h"

#define BQ 64  /* query rows per tile */
#define BK 64  /* keys per tile: a BQ x BK block of scores is 16 KiB, it stays in L1 */

/* 16 floats: one AVX-512 register, or two AVX ones (GCC splits a vector wider than the target's) */
typedef float f32x16 __attribute__((vector_size(64)));

static inline f32x16 load16(const float *p) { f32x16 v; memcpy(&v, p, sizeof v); return v; }
static inline void store16(float *p, f32x16 v) { memcpy(p, &v, sizeof v); }

/* C[0:R, 0:16 or 8] (+)= A[0:R, 0:k] B[0:k, 0:16 or 8] in registers. A is read one scalar at a
 * time (any strides: a transposed A costs nothing), B by rows. always_inline with a constant R
 * gives one fully unrolled copy per R. The 16-wide case is one f32x16 per row, so that with
 * AVX-512 each scalar of A costs one FMA instead of two. */
static inline __attribute__((always_inline)) void
tile(int R, int wide, int k, const float *a, long rsa, long csa, const float *b, long ldb,
     float *c, long ldc, int accumulate)
{
    if (wide) {
        f32x16 acc[6] = {0};
        for (int p = 0; p < k; p++) {
            f32x16 bp = load16(b + p * ldb);
            for (int i = 0; i < R; i++) acc[i] += a[i * rsa + p * csa] * bp;
        }
        for (int i = 0; i < R; i++) {
            float *ci = c + i * ldc;
            if (accumulate) acc[i] += load16(ci);
            store16(ci, acc[i]);
        }
        return;
    }
    f32x8 acc[6] = {0};
    for (int p = 0; p < k; p++) {
        f32x8 bp = load8(b + p * ldb);
        for (int i = 0; i < R; i++) acc[i] += a[i * rsa + p * csa] * bp;
    }
    for (int i = 0; i < R; i++) {
        float *ci = c + i * ldc;
        if (accumulate) acc[i] += load8(ci);
        store8(ci, acc[i]);
    }
}

/* C (m, n) (+)= A (m, k) B (k, n) for the small tiles of attention, unpacked: everything is
 * already in L1. Columns go 16 (then 8) at a time, rows 6 at a time; leftovers are plain loops. */
static void small_gemm(int m, int n, int k, const float *a, long rsa, long csa,
                       const float *b, long ldb, float *c, long ldc, int accumulate)
{
    int j = 0;
    for (; j + 8 <= n; j += 16) {
        int wide = j + 16 <= n;
        if (!wide && j + 8 > n) break;
        int i = 0;
        for (; i + 6 <= m; i += 6) {
            if (wide) tile(6, 1, k, a + i * rsa, rsa, csa, b + j, ldb, c + i * ldc + j, ldc, accumulate);
            else tile(6, 0, k, a + i * rsa, rsa, csa, b + j, ldb, c + i * ldc + j, ldc, accumulate);
        }
        const float *ai = a + i * rsa;
        float *ci = c + i * ldc + j;
        switch ((m - i) * 2 + wide) {  /* the last 1-5 rows, each with its own unrolled copy */
        case 11: tile(5, 1, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 10: tile(5, 0, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 9: tile(4, 1, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 8: tile(4, 0, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 7: tile(3, 1, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 6: tile(3, 0, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 5: tile(2, 1, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 4: tile(2, 0, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 3: tile(1, 1, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        case 2: tile(1, 0, k, ai, rsa, csa, b + j, ldb, ci, ldc, accumulate); break;
        default: break;
        }
        if (!wide) { j += 8; break; }
    }
    for (; j < n; j++)  /* fewer than 8 columns left */
        for (int i = 0; i < m; i++) {
            float s = accumulate ? c[i * ldc + j] : 0.0f;
            for (int p = 0; p < k; p++) s += a[i * rsa + p * csa] * b[p * ldb + j];
            c[i * ldc + j] = s;
        }
}

/* On the causal diagonal a query tile's row r sees the keys j < r + shift of the key tile only
 * (shift = i0 + offset - j0 + 1, see visible()), so about half of each product there is zeros.
 * These three run small_gemm one strip of STRIP rows (its register tile's height) at a time and
 * cut the strip's columns or its k range to what its rows can see. Off the diagonal (shift >= the
 * tile's width) each is one plain small_gemm. Skipped terms are exact zeros, so the sums are the
 * plain ones'. */
#define STRIP 6
#define NO_CUT (1L << 30)  /* the shift of a tile that nothing cuts (not causal) */

static inline int clamp_int(long x, int hi) { return x < 0 ? 0 : (x > hi ? hi : (int)x); }

/* C = A B (S = Q K^T, dP = dout V^T) where row r needs columns < r + shift only: each strip gets
 * the columns its last row needs, rounded up to 16; C past them is left unwritten */
static void gemm_causal_cols(int m, int n, int k, const float *a, long rsa, long csa,
                             const float *b, long ldb, float *c, long ldc, long shift)
{
    if (shift >= n) {
        small_gemm(m, n, k, a, rsa, csa, b, ldb, c, ldc, 0);
        return;
    }
    for (int i = 0; i < m; i += STRIP) {
        int h = m - i < STRIP ? m - i : STRIP;
        int cols = (clamp_int(i + h - 1 + shift, n) + 15) / 16 * 16;
        if (cols > n) cols = n;
        if (cols > 0) small_gemm(h, cols, k, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc, 0);
    }
}

/* C += A B (O += P V, dQ += dS K) where A's row r is zero from column r + shift on: each strip
 * sums over the k its last row needs */
static void gemm_causal_k(int m, int n, int k, const float *a, long rsa, long csa,
                          const float *b, long ldb, float *c, long ldc, long shift)
{
    if (shift >= k) {
        small_gemm(m, n, k, a, rsa, csa, b, ldb, c, ldc, 1);
        return;
    }
    for (int i = 0; i < m; i += STRIP) {
        int h = m - i < STRIP ? m - i : STRIP;
        int kk = clamp_int(i + h - 1 + shift, k);
        if (kk > 0) small_gemm(h, n, kk, a + i * rsa, rsa, csa, b, ldb, c + i * ldc, ldc, 1);
    }
}

/* C += A B with A = P^T or dS^T (dV += P^T dout, dK += dS^T Q): C's rows are keys, and key c
 * gets nothing from the query rows before c - shift + 1, so each strip starts its k there */
static void gemm_causal_k_from(int m, int n, int k, const float *a, long rsa, long csa,
                               const float *b, long ldb, float *c, long ldc, long shift)
{
    if (shift >= m) {
        small_gemm(m, n, k, a, rsa, csa, b, ldb, c, ldc, 1);
        return;
    }
    for (int i = 0; i < m; i += STRIP) {
        int h = m - i < STRIP ? m - i : STRIP;
        int from = clamp_int(i - shift + 1, k);
        if (from < k)
            small_gemm(h, n, k - from, a + i * rsa + from * csa, rsa, csa, b + from * ldb, ldb,
                       c + i * ldc, ldc, 1);
    }
}

/* (t, hs) -> (hs, ld): rows of dst are columns of src, so S = Q K^T reads K^T by rows. Eight
 * rows of src at a time, so that each store is 8 contiguous floats rather than one float per
 * row of dst. */
static void transpose(float *dst, long ld, const float *src, int t, int hs)
{
    int i = 0;
    for (; i + 8 <= t; i += 8)
        for (int d = 0; d < hs; d++) {
            const float *from = src + (long)i * hs + d;
            long step = hs;
            float col[8] = {from[0], from[step], from[2 * step], from[3 * step], from[4 * step],
                            from[5 * step], from[6 * step], from[7 * step]};
            store8(dst + d * ld + i, load8(col));
        }
    for (; i < t; i++)
        for (int d = 0; d < hs; d++) dst[d * ld + i] = src[i * hs + d];
}

/* 1 when probability number `counter` survives dropout: splitmix64 of the counter'th step after
 * seed, whose top 24 bits must clear the threshold (floor(p * 2^24)) */
static inline int dropout_keep(uint64_t seed, uint64_t counter, uint64_t threshold)
{
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (z >> 40) >= threshold;
}

/* x[0] + ... + x[n-1] in a fixed order: 8 lanes summed as a tree at the end. An `omp simd`
 * reduction adds its lanes one after another, a chain of 16 dependent adds per row of a tile. */
static inline float row_sum(const float *x, int n)
{
    f32x8 acc0 = {0}, acc1 = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        acc0 += load8(x + j);
        acc1 += load8(x + j + 8);
    }
    if (j + 8 <= n) {
        acc0 += load8(x + j);
        j += 8;
    }
    acc0 += acc1;
    float sum = ((acc0[0] + acc0[4]) + (acc0[2] + acc0[6])) + ((acc0[1] + acc0[5]) + (acc0[3] + acc0[7]));
    for (; j < n; j++) sum += x[j];
    return sum;
}

typedef int32_t i32x8 __attribute__((vector_size(32)));

/* max(x[0:n]), -inf for n = 0; like row_sum, 8 lanes and then a tree */
static inline float row_max(const float *x, int n)
{
    f32x8 acc = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        f32x8 v = load8(x + j);
        i32x8 greater = v > acc;  /* -1 or 0 per lane (C has no ?: on vectors) */
        acc = (f32x8)(((i32x8)v & greater) | ((i32x8)acc & ~greater));
    }
    float a = acc[0] > acc[4] ? acc[0] : acc[4], b = acc[1] > acc[5] ? acc[1] : acc[5];
    float c = acc[2] > acc[6] ? acc[2] : acc[6], d = acc[3] > acc[7] ? acc[3] : acc[7];
    a = a > c ? a : c;
    b = b > d ? b : d;
    float m = a > b ? a : b;
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* zeros x[n:bk], the masked end of a row (a plain loop there compiles to one store per float) */
static inline void zero_tail(float *x, int n, int bk)
{
    if (n < bk) memset(x + n, 0, sizeof(float) * (bk - n));
}

/* What a head needs besides q, k, v: the padding mask of its batch row and the dropout. */
typedef struct {
    const unsigned char *key_mask;  /* (tk,) of this head's batch row, or NULL */
    uint64_t seed, threshold;       /* threshold 0: no dropout */
    float drop_scale;               /* 1 / (1 - p) for the kept probabilities */
} head_options;

/* How many keys of the tile starting at key j0 (bk wide) query row i may see: causal query i
 * sits at absolute position i + offset (with a KV cache the queries are the last tq of tk). */
static inline int visible(int causal, long i, long offset, int j0, int bk)
{
    if (!causal) return bk;
    long n = i + offset - j0 + 1;
    return n < 0 ? 0 : (n > bk ? bk : (int)n);
}

/* Head h of attention_forward, on this thread's scratch: kt (hs, ld) for K^T, s (BQ, BK). */
static void forward_head(float *out, float *lse, const float *q, const float *k, const float *v,
                         int h, int tq, int tk, int hs, int causal, float scale, float *kt, long ld,
                         float *s, head_options opt)
{
    long offset = tk - tq;
    float m[BQ], l[BQ];
    const float *qh = q + (long)h * tq * hs, *kh = k + (long)h * tk * hs;
    const float *vh = v + (long)h * tk * hs;
    transpose(kt, ld, kh, tk, hs);
    for (int i0 = 0; i0 < tq; i0 += BQ) {
        int bq = tq - i0 < BQ ? tq - i0 : BQ;
        float *o = out + ((long)h * tq + i0) * hs;
        /* keys past the last row's position are masked for every row of the tile */
        long kend = causal ? min_long(tk, i0 + bq + offset) : tk;
        memset(o, 0, sizeof(float) * bq * hs);
        for (int r = 0; r < bq; r++) { m[r] = -INFINITY; l[r] = 0.0f; }
        for (int j0 = 0; j0 < kend; j0 += BK) {
            int bk = kend - j0 < BK ? (int)(kend - j0) : BK;
            int bk16 = (bk + 15) / 16 * 16;
            long shift = causal ? i0 + offset - j0 + 1 : NO_CUT;  /* row r sees keys < r + shift */
            /* S = Q K^T (bq, bk), over padded columns that the mask then ignores */
            gemm_causal_cols(bq, bk16, hs, qh + (long)i0 * hs, hs, 1, kt + j0, ld, s, BK, shift);
            for (int r = 0; r < bq; r++) {
                float *sr = s + r * BK;
                int n = visible(causal, i0 + r, offset, j0, bk);
                if (opt.key_mask) {
                    const unsigned char *km = opt.key_mask + j0;
                    #pragma omp simd
                    for (int j = 0; j < n; j++) sr[j] = km[j] ? sr[j] * scale : -INFINITY;  /* padding keys */
                } else {
                    #pragma omp simd
                    for (int j = 0; j < n; j++) sr[j] *= scale;
                }
                float tile_max = row_max(sr, n);
                /* online softmax: a larger max shrinks everything summed so far by
                 * exp(m_old - m_new) (exp(-inf) = 0 on the first tile) */
                float m_new = tile_max > m[r] ? tile_max : m[r];
                if (m_new == -INFINITY) {  /* no key seen yet (only with a key_mask): add nothing */
                    memset(sr, 0, sizeof(float) * bk);
                    continue;
                }
                float shrink = exp_approx(m[r] - m_new);
                #pragma omp simd
                for (int j = 0; j < n; j++) sr[j] = exp_approx(sr[j] - m_new);
                zero_tail(sr, n, bk);  /* the mask */
                l[r] = l[r] * shrink + row_sum(sr, n);
                m[r] = m_new;
                if (shrink != 1.0f) {
                    float *orow = o + r * hs;
                    #pragma omp simd
                    for (int d = 0; d < hs; d++) orow[d] *= shrink;
                }
                if (opt.threshold) {  /* after the sum: softmax normalises over every key, kept or not */
                    uint64_t first = ((uint64_t)h * tq + i0 + r) * tk + j0;
                    #pragma omp simd
                    for (int j = 0; j < n; j++)
                        sr[j] = dropout_keep(opt.seed, first + j, opt.threshold) ? sr[j] * opt.drop_scale : 0.0f;
                }
            }
            /* O += P V (bq, hs) */
            gemm_causal_k(bq, hs, bk, s, BK, 1, vh + (long)j0 * hs, hs, o, hs, shift);
        }
        for (int r = 0; r < bq; r++) {
            if (l[r] == 0.0f) {  /* a query that sees no key (key_mask): out = 0 and lse = 0 */
                lse[(long)h * tq + i0 + r] = 0.0f;
                continue;  /* o's row is still the memset's zeros */
            }
            float inv = 1.0f / l[r], *orow = o + r * hs;
            #pragma omp simd
            for (int d = 0; d < hs; d++) orow[d] *= inv;
            lse[(long)h * tq + i0 + r] = m[r] + logf(l[r]);
        }
    }
}

/* head h's options: its batch row of the key mask (heads are batch-major: h = b * nh + head) */
static head_options options_of(int h, const unsigned char *key_mask, int nh, int tk,
                               unsigned long long seed, unsigned int threshold, float drop_scale)
{
    head_options opt = {key_mask ? key_mask + (long)(h / nh) * tk : NULL, seed, threshold, drop_scale};
    return opt;
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       const unsigned char *key_mask, int bh, int nh, int tq, int tk, int hs,
                       int causal, float scale, unsigned long long seed, unsigned int drop_threshold,
                       float drop_scale)
{
    /* K^T rows padded so a 16-wide load never leaves the buffer, plus 16 so that rows are not a
     * power of two apart (which would map them onto the same few L1 cache sets) */
    long ld = (tk + 15) / 16 * 16 + 16;
    if (bh == 1 || (long)bh * tq * tk * hs < 16 * TG_PARALLEL_MIN) {
        /* NOTE: too little work for two threads, and not even `omp parallel if (0)`: an OpenMP
         * team of one still pays the team's start-up, a large share of a decoding row's time
         * (bench/RESULTS.md has the measurement) */
        float *kt = tg_alloc(hs * ld), *s = tg_alloc(BQ * BK);
        memset(kt, 0, sizeof(float) * hs * ld);
        memset(s, 0, sizeof(float) * BQ * BK);  /* the causal cut leaves columns unwritten */
        for (int h = 0; h < bh; h++) forward_head(out, lse, q, k, v, h, tq, tk, hs, causal, scale, kt, ld, s,
                         options_of(h, key_mask, nh, tk, seed, drop_threshold, drop_scale));
        free(kt);
        free(s);
        return;
    }
    #pragma omp parallel
    {
        float *kt = tg_alloc(hs * ld), *s = tg_alloc(BQ * BK);
        memset(kt, 0, sizeof(float) * hs * ld);
        memset(s, 0, sizeof(float) * BQ * BK);  /* the causal cut leaves columns unwritten */
        #pragma omp for schedule(dynamic)
        for (int h = 0; h < bh; h++) forward_head(out, lse, q, k, v, h, tq, tk, hs, causal, scale, kt, ld, s,
                         options_of(h, key_mask, nh, tk, seed, drop_threshold, drop_scale));
        free(kt);
        free(s);
    }
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *out, const float *lse,
                        const unsigned char *key_mask, int bh, int nh, int tq, int tk, int hs,
                        int causal, float scale, unsigned long long seed, unsigned int drop_threshold,
                        float drop_scale)
{
    long offset = tk - tq;
    long ld = (tk + 15) / 16 * 16 + 16;  /* as in forward */
    #pragma omp parallel if (bh > 1 && (long)bh * tq * tk * hs >= 16 * TG_PARALLEL_MIN)
    {
        float *kt = tg_alloc(hs * ld), *vt = tg_alloc(hs * ld);
        float *p = tg_alloc(BQ * BK), *ds = tg_alloc(BQ * BK), *kept = tg_alloc(BQ * BK);
        float *delta = tg_alloc(tq);
        memset(kt, 0, sizeof(float) * hs * ld);
        memset(vt, 0, sizeof(float) * hs * ld);
        memset(p, 0, sizeof(float) * BQ * BK);  /* the causal cut leaves columns unwritten */
        memset(ds, 0, sizeof(float) * BQ * BK);
        #pragma omp for schedule(dynamic)
        for (int h = 0; h < bh; h++) {
            long qo = (long)h * tq * hs, ko = (long)h * tk * hs;
            const float *qh = q + qo, *kh = k + ko, *gh = dout + qo;
            const float *lh = lse + (long)h * tq;
            float *dqh = dq + qo, *dkh = dk + ko, *dvh = dv + ko;
            head_options opt = options_of(h, key_mask, nh, tk, seed, drop_threshold, drop_scale);
            transpose(kt, ld, kh, tk, hs);
            transpose(vt, ld, v + ko, tk, hs);
            /* softmax backward needs rowsum(dP * P) = rowsum(dout * out): one dot per row */
            for (int i = 0; i < tq; i++) {
                float dot = 0.0f;
                #pragma omp simd reduction(+:dot)
                for (int d = 0; d < hs; d++) dot += gh[i * hs + d] * out[qo + i * hs + d];
                delta[i] = dot;
            }
            memset(dqh, 0, sizeof(float) * tq * hs);
            memset(dkh, 0, sizeof(float) * tk * hs);
            memset(dvh, 0, sizeof(float) * tk * hs);
            for (int j0 = 0; j0 < tk; j0 += BK) {  /* outer loop over keys: dK, dV stay hot */
                int bk = tk - j0 < BK ? tk - j0 : BK;
                int bk16 = (bk + 15) / 16 * 16;
                /* the first query that sees key j0, rounded down to a tile */
                long first = causal ? max_long(0, j0 - offset) : 0;
                for (int i0 = (int)(first / BQ * BQ); i0 < tq; i0 += BQ) {
                    int bq = tq - i0 < BQ ? tq - i0 : BQ;
                    const float *qi = qh + (long)i0 * hs, *gi = gh + (long)i0 * hs;
                    long shift = causal ? i0 + offset - j0 + 1 : NO_CUT;  /* as in forward */
                    /* recompute P = exp(S * scale - lse), exactly forward's softmax */
                    gemm_causal_cols(bq, bk16, hs, qi, hs, 1, kt + j0, ld, p, BK, shift);
                    for (int r = 0; r < bq; r++) {
                        float *pr = p + r * BK, l = lh[i0 + r];
                        int n = visible(causal, i0 + r, offset, j0, bk);
                        #pragma omp simd
                        for (int j = 0; j < n; j++) pr[j] = exp_approx(pr[j] * scale - l);
                        zero_tail(pr, n, bk);  /* the mask */
                        if (opt.key_mask)
                            #pragma omp simd
                            for (int j = 0; j < n; j++) pr[j] = opt.key_mask[j0 + j] ? pr[j] : 0.0f;
                    }
                    if (opt.threshold) {
                        /* out = (P * kept) V with kept = 0 or 1 / (1 - p): dP = dout V^T * kept,
                         * and dV takes P * kept; the dS loop below needs P itself, so p stays */
                        for (int r = 0; r < bq; r++) {
                            uint64_t first = ((uint64_t)h * tq + i0 + r) * tk + j0;
                            #pragma omp simd
                            for (int j = 0; j < bk; j++)
                                kept[r * BK + j] = dropout_keep(opt.seed, first + j, opt.threshold)
                                                   ? opt.drop_scale : 0.0f;
                        }
                        gemm_causal_cols(bq, bk16, hs, gi, hs, 1, vt + j0, ld, ds, BK, shift);  /* dout V^T */
                        for (int r = 0; r < bq; r++) {
                            float *dsr = ds + r * BK, *pr = p + r * BK, *kr = kept + r * BK;
                            float dl = delta[i0 + r];
                            int n = visible(causal, i0 + r, offset, j0, bk);  /* P is 0 past n */
                            #pragma omp simd
                            for (int j = 0; j < n; j++) {
                                dsr[j] = pr[j] * (dsr[j] * kr[j] - dl) * scale;
                                pr[j] *= kr[j];
                            }
                            zero_tail(dsr, n, bk);
                        }
                        gemm_causal_k_from(bk, hs, bq, p, 1, BK, gi, hs, dvh + (long)j0 * hs, hs, shift);
                    } else {
                        /* out = P V: dV += P^T dout (P^T is P with swapped strides) */
                        gemm_causal_k_from(bk, hs, bq, p, 1, BK, gi, hs, dvh + (long)j0 * hs, hs, shift);
                        /* dP = dout V^T, then dS = P (dP - delta) * scale */
                        gemm_causal_cols(bq, bk16, hs, gi, hs, 1, vt + j0, ld, ds, BK, shift);
                        for (int r = 0; r < bq; r++) {
                            float *dsr = ds + r * BK, *pr = p + r * BK, dl = delta[i0 + r];
                            int n = visible(causal, i0 + r, offset, j0, bk);  /* P is 0 past n */
                            #pragma omp simd
                            for (int j = 0; j < n; j++) dsr[j] = pr[j] * (dsr[j] - dl) * scale;
                            zero_tail(dsr, n, bk);
                        }
                    }
                    /* S = Q K^T: dQ += dS K, dK += dS^T Q */
                    gemm_causal_k(bq, hs, bk, ds, BK, 1, kh + (long)j0 * hs, hs, dqh + (long)i0 * hs, hs, shift);
                    gemm_causal_k_from(bk, hs, bq, ds, 1, BK, qi, hs, dkh + (long)j0 * hs, hs, shift);
                }
            }
        }
        free(kt); free(vt); free(p); free(ds); free(kept); free(delta);
    }
}

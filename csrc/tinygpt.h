/* tinygpt.h: every C kernel of tinygpt, float32, outputs first. This file is also the cffi cdef
 * (csrc/build_cffi.py reads it as is), so it holds plain declarations only: no macros, no inline
 * code. Shapes are row-major and contiguous unless a stride argument says otherwise. The Python
 * wrappers with the same names are in tinygpt/kernels/c_kernels.py; the NumPy references they
 * must match are in tinygpt/ops/. Not here: helpers shared between kernels (tinygpt_internal.h). */

/* runtime.c: OpenMP's team size for every kernel (1 turns threading off) */
void tinygpt_set_num_threads(int n);
int tinygpt_get_num_threads(void);
/* "build: <vector ISA compiled for>; cpu: <vector ISA of this CPU>", e.g. "build: avx2+fma; cpu: avx2+fma" */
const char *tinygpt_simd(void);

/* sgemm.c: C = A B, or C += A B when accumulate is nonzero; element (i, j) of X sits at
 * x[i * rsx + j * csx], so a transposed operand is just swapped strides. */
void sgemm(int m, int n, int k,
           const float *a, long rsa, long csa,   /* (m, k) */
           const float *b, long rsb, long csb,   /* (k, n) */
           float *c, long rsc,                   /* (m, n), unit column stride */
           int accumulate);

/* the same product as three plain loops: the definition sgemm is tested against */
void sgemm_naive(int m, int n, int k,
                 const float *a, long rsa, long csa,   /* (m, k) */
                 const float *b, long rsb, long csb,   /* (k, n) */
                 float *c, long rsc,                   /* (m, n), unit column stride */
                 int accumulate);

/* skinny.c: C = A B for A of a few rows, B read once in place; B must have csb == 1 (row-major)
 * or rsb == 1 (column-major, e.g. a transposed weight) */
void sgemm_skinny(int m, int n, int k,
                  const float *a, long rsa,             /* (m, k), unit column stride */
                  const float *b, long rsb, long csb,   /* (k, n) */
                  float *c, long rsc);                  /* (m, n), unit column stride */

void matmul_forward(float *out,       /* (batch, m, n) */
                    const float *a,   /* (batch, m, k) */
                    const float *b,   /* (batch, k, n) if b_batched else (k, n) */
                    int batch, int m, int k, int n, int b_batched);

void matmul_backward(float *da,         /* (batch, m, k) */
                     float *db,         /* (batch, k, n) if b_batched else (k, n), summed over batch */
                     const float *dout, /* (batch, m, n) */
                     const float *a,    /* (batch, m, k) */
                     const float *b,    /* (batch, k, n) if b_batched else (k, n) */
                     int batch, int m, int k, int n, int b_batched);

/* attention.c: fused scaled dot-product attention, one (tq, hs) problem per (batch, head), with
 * bh = batch * nh heads in batch-major order. Dropout on the probabilities when drop_threshold > 0:
 * element (h, i, j) is kept when the top 24 bits of splitmix64(seed, (h * tq + i) * tk + j) are
 * >= drop_threshold = floor(p * 2^24), and then scaled by drop_scale = 1 / (1 - p). */
void attention_forward(float *out,      /* (bh, tq, hs) */
                       float *lse,      /* (bh, tq): each row's log-sum-exp of its scaled scores */
                       const float *q,  /* (bh, tq, hs) */
                       const float *k,  /* (bh, tk, hs) */
                       const float *v,  /* (bh, tk, hs) */
                       const unsigned char *key_mask,  /* (bh / nh, tk): 1 where a key is real; or NULL */
                       int bh, int nh, int tq, int tk, int hs, int causal, float scale,
                       unsigned long long seed, unsigned int drop_threshold, float drop_scale);

void attention_backward(float *dq,         /* (bh, tq, hs) */
                        float *dk,         /* (bh, tk, hs) */
                        float *dv,         /* (bh, tk, hs) */
                        const float *dout, /* (bh, tq, hs) */
                        const float *q,    /* (bh, tq, hs) */
                        const float *k,    /* (bh, tk, hs) */
                        const float *v,    /* (bh, tk, hs) */
                        const float *out,  /* (bh, tq, hs) */
                        const float *lse,  /* (bh, tq) */
                        const unsigned char *key_mask,  /* (bh / nh, tk) or NULL, as in forward */
                        int bh, int nh, int tq, int tk, int hs, int causal, float scale,
                        unsigned long long seed, unsigned int drop_threshold, float drop_scale);

/* softmax.c: along the last axis of a (rows, v) array */
void softmax_forward(float *out,        /* (rows, v) */
                     const float *x,    /* (rows, v) */
                     long rows, int v);

void softmax_backward(float *dx,         /* (rows, v) */
                      const float *dout, /* (rows, v) */
                      const float *out,  /* (rows, v) */
                      long rows, int v);

void log_softmax_forward(float *out,     /* (rows, v) */
                         const float *x, /* (rows, v) */
                         long rows, int v);

void log_softmax_backward(float *dx,         /* (rows, v) */
                          const float *dout, /* (rows, v) */
                          const float *out,  /* (rows, v) */
                          long rows, int v);

/* returns how many targets lie outside [0, v) and are not ignore_index (0 when all is well) */
long cross_entropy_forward(float *losses,          /* (n,): 0 where the target is ignored */
                           float *lse,             /* (n,) */
                           const float *logits,    /* (n, v) */
                           const long long *targets, /* (n,) */
                           long n, int v, long long ignore_index);

void cross_entropy_backward(float *dlogits,          /* (n, v) */
                            const float *logits,     /* (n, v) */
                            const float *lse,        /* (n,) */
                            const long long *targets, /* (n,) */
                            const float *scale,      /* (n,) if per_row else (1,): dloss per row */
                            long n, int v, long long ignore_index, int per_row);

/* layernorm.c: over the last axis of a (rows, c) array; b and db may be NULL */
void layernorm_forward(float *out,      /* (rows, c) */
                       float *xhat,     /* (rows, c) */
                       float *rstd,     /* (rows,) */
                       const float *x,  /* (rows, c) */
                       const float *w,  /* (c,) */
                       const float *b,  /* (c,) or NULL */
                       long rows, int c, float eps);

void layernorm_backward(float *dx,         /* (rows, c) */
                        float *dw,         /* (c,) */
                        float *db,         /* (c,) or NULL */
                        const float *dout, /* (rows, c) */
                        const float *xhat, /* (rows, c) */
                        const float *rstd, /* (rows,) */
                        const float *w,    /* (c,) */
                        long rows, int c);

/* gelu.c: GPT-2's tanh approximation, elementwise */
void gelu_forward(float *out,     /* (n,) */
                  const float *x, /* (n,) */
                  long n);

void gelu_backward(float *dx,         /* (n,) */
                   const float *dout, /* (n,) */
                   const float *x,    /* (n,) */
                   long n);

/* adamw.c: one AdamW step, param, m and v updated in place */
void adamw_update(float *param,      /* (n,) */
                  const float *grad, /* (n,) */
                  float *m,          /* (n,) */
                  float *v,          /* (n,) */
                  long n, double lr, double beta1, double beta2, double eps,
                  double weight_decay, long step);

/* norm.c: sum(x**2) accumulated in double, the same on any number of threads */
double sum_of_squares(const float *x, /* (n,) */
                      long n);

/* lstm.c: one LSTM layer over a whole sequence; gates in PyTorch's order i, f, g, o */
void lstm_forward(float *hs,          /* (batch, steps + 1, d): hs[:, 0] = h0 on entry */
                  float *cs,          /* (batch, steps + 1, d): cs[:, 0] = c0 on entry */
                  float *gates,       /* (batch, steps, 4d): activated i, f, g, o */
                  float *tanh_c,      /* (batch, steps, d) */
                  const float *x,     /* (batch, steps, in) */
                  const float *w_ih,  /* (in, 4d) */
                  const float *w_hh,  /* (d, 4d) */
                  const float *b,     /* (4d,) */
                  int batch, int steps, int in, int d);

void lstm_backward(float *dx,            /* (batch, steps, in) */
                   float *dh0,           /* (batch, d): holds dh_T on entry (zeros if none) */
                   float *dc0,           /* (batch, d): holds dc_T on entry (zeros if none) */
                   float *dw_ih,         /* (in, 4d) */
                   float *dw_hh,         /* (d, 4d) */
                   float *db,            /* (4d,) */
                   const float *dout,    /* (batch, steps, d) or NULL */
                   const float *x,       /* (batch, steps, in) */
                   const float *w_ih,    /* (in, 4d) */
                   const float *w_hh,    /* (d, 4d) */
                   const float *gates,   /* (batch, steps, 4d) */
                   const float *hs,      /* (batch, steps + 1, d) */
                   const float *cs,      /* (batch, steps + 1, d) */
                   const float *tanh_c,  /* (batch, steps, d) */
                   int batch, int steps, int in, int d);

/* gru.c: one GRU layer over a whole sequence; gates in PyTorch's order r, z, n (reset after) */
void gru_forward(float *hs,          /* (batch, steps + 1, d): hs[:, 0] = h0 on entry */
                 float *gates,       /* (batch, steps, 3d): activated r, z, n */
                 float *hn,          /* (batch, steps, d): h_{t-1} W_hn + b_hn */
                 const float *x,     /* (batch, steps, in) */
                 const float *w_ih,  /* (in, 3d) */
                 const float *w_hh,  /* (d, 3d) */
                 const float *b_ih,  /* (3d,) */
                 const float *b_hh,  /* (3d,) */
                 int batch, int steps, int in, int d);

void gru_backward(float *dx,           /* (batch, steps, in) */
                  float *dh0,          /* (batch, d): holds dh_T on entry (zeros if none) */
                  float *dw_ih,        /* (in, 3d) */
                  float *dw_hh,        /* (d, 3d) */
                  float *db_ih,        /* (3d,) */
                  float *db_hh,        /* (3d,) */
                  const float *dout,   /* (batch, steps, d) or NULL */
                  const float *x,      /* (batch, steps, in) */
                  const float *w_ih,   /* (in, 3d) */
                  const float *w_hh,   /* (d, 3d) */
                  const float *gates,  /* (batch, steps, 3d) */
                  const float *hs,     /* (batch, steps + 1, d) */
                  const float *hn,     /* (batch, steps, d) */
                  int batch, int steps, int in, int d);

/* bpe.c: byte-pair encoding's merge loop. bpe_table_build fills an open-addressing table of
 * size slots (a power of two > n_merges) mapping the pair (left[r], right[r]) to its rank r;
 * bpe_merge_chunks encodes n_chunks chunks of bytes, chunk c being data[offsets[c]:offsets[c+1]],
 * into out (room for offsets[n_chunks] ids), chunk c's ids at out[out_offsets[c]:out_offsets[c+1]],
 * and returns the number of ids written. */
void bpe_table_build(long long *keys, int *ranks, long size,   /* (size,), (size,) */
                     const int *left, const int *right,        /* (n_merges,) */
                     long n_merges);
long bpe_merge_chunks(int *out, long *out_offsets,               /* (n_bytes,), (n_chunks + 1,) */
                      const unsigned char *data, const long *offsets, long n_chunks,
                      const int *byte_ids,                       /* (256,): the id of each byte */
                      const long long *keys, const int *ranks, long size,
                      const int *left, const int *right,         /* (n_merges,): the pair of rank r */
                      const int *merged_id);                     /* (n_merges,): the id it makes */

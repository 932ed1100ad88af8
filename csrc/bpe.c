/* bpe.c: byte-pair encoding's merge loop for many chunks in one call, the encode side of the
 * byte-level BPE tokenizers (tinygpt/tokenizers/bpe_merge.py holds the Python reference and the
 * rule: merge the present pair of lowest rank, every non-overlapping occurrence left to right,
 * until no pair has a rank). Pairs are looked up in an open-addressing hash table built here.
 * Not here: the regex pre-split, the chunk cache, special tokens (all in Python). */
#include "tinygpt.h"
#include "tinygpt_internal.h"

#define EMPTY (-1LL)

static inline long long pair_key(int left, int right)
{
    return (long long)(((unsigned long long)(unsigned)left << 32) | (unsigned)right);
}

static inline long slot_of(long long key, long size)
{
    /* Fibonacci hashing: the high bits of key * 2^64/phi, masked to the power-of-two size */
    unsigned long long h = (unsigned long long)key * 0x9E3779B97F4A7C15ULL;
    return (long)((h >> 32) & (unsigned long long)(size - 1));
}

void bpe_table_build(long long *keys, int *ranks, long size, const int *left, const int *right,
                     long n_merges)
{
    for (long s = 0; s < size; s++)
        keys[s] = EMPTY;
    for (long r = 0; r < n_merges; r++) {
        long long key = pair_key(left[r], right[r]);
        long s = slot_of(key, size);
        while (keys[s] != EMPTY && keys[s] != key)
            s = (s + 1) & (size - 1);
        keys[s] = key;  /* a repeated pair keeps the later rank, as the Python dict does */
        ranks[s] = (int)r;
    }
}

static inline int rank_of(const long long *keys, const int *ranks, long size, int left, int right)
{
    long long key = pair_key(left, right);
    for (long s = slot_of(key, size);; s = (s + 1) & (size - 1)) {
        if (keys[s] == key)
            return ranks[s];
        if (keys[s] == EMPTY)
            return -1;
    }
}

long bpe_merge_chunks(int *out, long *out_offsets, const unsigned char *data, const long *offsets,
                      long n_chunks, const int *byte_ids, const long long *keys, const int *ranks,
                      long size, const int *left, const int *right, const int *merged_id)
{
    long w = 0;  /* where the next chunk's ids start in out; ids never outnumber bytes */
    out_offsets[0] = 0;
    for (long c = 0; c < n_chunks; c++) {
        int *ids = out + w;
        long n = offsets[c + 1] - offsets[c];
        for (long i = 0; i < n; i++)
            ids[i] = byte_ids[data[offsets[c] + i]];
        while (n >= 2) {
            int best = -1;
            for (long i = 0; i + 1 < n; i++) {
                int r = rank_of(keys, ranks, size, ids[i], ids[i + 1]);
                if (r >= 0 && (best < 0 || r < best))
                    best = r;
            }
            if (best < 0)
                break;
            int a = left[best], b = right[best], merged = merged_id[best];
            long j = 0;
            for (long i = 0; i < n;) {  /* in place: j never passes i */
                if (i + 1 < n && ids[i] == a && ids[i + 1] == b) {
                    ids[j++] = merged;
                    i += 2;
                } else {
                    ids[j++] = ids[i++];
                }
            }
            n = j;
        }
        w += n;
        out_offsets[c + 1] = w;
    }
    return w;
}

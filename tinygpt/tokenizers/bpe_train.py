"""Learning BPE merges with incremental pair counts: each merge touches only the words that hold it.

A naive trainer recounts every adjacent pair of the whole corpus for every merge. Here the
corpus is first reduced to its distinct chunks with their frequencies; pair counts and a
pair -> chunks index are built once; a merge then rewrites only the chunks listed under its
pair and adjusts the counts they change. A heap finds the most frequent pair. This module does
NOT pre-split text or encode: see pretokenize.py and bpe.py.
"""

import heapq
from collections import defaultdict


def merge_pair(ids, pair, new_id):
    """list[int] -> list[int] with every non-overlapping `pair`, scanned left to right, as `new_id`."""
    a, b = pair
    out, start, last = [], 0, len(ids) - 1
    while True:
        try:
            i = ids.index(a, start, last)  # the next `a` that has a right neighbour (C speed)
        except ValueError:
            break
        if ids[i + 1] == b:
            out += ids[start:i]
            out.append(new_id)
            start = i + 2
        else:
            out += ids[start:i + 1]
            start = i + 1
    out += ids[start:]
    return out


def train_merges(chunk_counts, num_merges, first_id=256):
    """{chunk bytes: frequency} -> up to `num_merges` merges [(left id, right id), ...].

    Merge k creates id first_id + k. The pair picked is the most frequent one; ties go to the
    smallest (left id, right id), so the result depends on the counts only, not on text order.
    Stops early when no pair is left (every chunk is a single token).
    """
    words = [list(chunk) for chunk in chunk_counts]   # each distinct chunk as its byte ids
    freqs = list(chunk_counts.values())               # how often that chunk occurs in the corpus

    # pair_counts[p]: occurrences of p in the corpus. where[p]: the words that may hold p.
    pair_counts = defaultdict(int)
    where = defaultdict(set)
    for w, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(w)

    # A max-heap by count (negated for heapq), then by smallest pair: the tie-break rule.
    # Entries go stale when a count changes; a fresh entry is pushed and stale ones are skipped.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    while len(merges) < num_merges:
        while heap and -heap[0][0] != pair_counts.get(heap[0][1], 0):
            heapq.heappop(heap)  # stale: this pair's count has changed since it was pushed
        if not heap:
            break
        _, pair = heapq.heappop(heap)
        new_id = first_id + len(merges)
        merges.append(pair)

        # Rewrite each word holding `pair`, noting how pair counts change around each merge:
        #   ... x a b y ...  ->  ... x Z y ...   loses (x,a) (a,b) (b,y), gains (x,Z) (Z,y).
        # x is read from the merged output, so back-to-back merges (a b a b -> Z Z) come out
        # right: the (Z,a) gained by the first merge is lost again by the second.
        a, b = pair
        delta = defaultdict(int)
        for w in where.pop(pair):
            # NOTE: `where` may list a word under a pair it no longer holds (entries are never
            # removed); the scan below then finds nothing and changes nothing.
            word, freq = words[w], freqs[w]
            out, i, n = [], 0, len(word)
            while i < n:
                if word[i] == a and i + 1 < n and word[i + 1] == b:
                    delta[pair] -= freq
                    if out:
                        x = out[-1]
                        delta[x, a] -= freq
                        delta[x, new_id] += freq
                        where[x, new_id].add(w)
                    if i + 2 < n:
                        y = word[i + 2]
                        delta[b, y] -= freq
                        delta[new_id, y] += freq
                        where[new_id, y].add(w)
                    out.append(new_id)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            words[w] = out

        for p, d in delta.items():
            if d == 0:
                continue
            count = pair_counts[p] + d
            if count > 0:
                pair_counts[p] = count
                heapq.heappush(heap, (-count, p))
            else:
                del pair_counts[p]  # gone from the corpus (this is always true of `pair` itself)
                where.pop(p, None)
    return merges

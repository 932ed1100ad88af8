"""BPE's merge loop for many chunks at once: the Python reference (the specification) and, through
the kernel registry, the C version of the same name (csrc/bpe.c), which the encoders call.

The rule, the same for tinygpt's and GPT-2's byte-level BPE: start from each byte's id; while some
adjacent pair has a merge, take the one of lowest rank and replace every non-overlapping
occurrence of it, left to right. Not here: the pre-split, the chunk cache (bpe.encode_chunks),
special tokens, training (bpe_train.py).
"""

from itertools import repeat

from tinygpt.backend import kernel

from .bpe_train import merge_pair


class MergeTable:
    """A tokenizer's merges in the form both versions read: byte_ids[b] = the id of byte b;
    merges[r] = (left id, right id) of rank r, which makes merged_id[r]; ranks = {pair: r}.
    c_cache is the C version's place for its hash table (built on first use, then reused)."""

    def __init__(self, byte_ids, merges, merged_id):
        self.byte_ids, self.merges, self.merged_id = list(byte_ids), list(merges), list(merged_id)
        if len(self.byte_ids) != 256 or len(self.merged_id) != len(self.merges):
            raise ValueError(f"MergeTable needs 256 byte ids and one merged id per merge, got "
                             f"{len(self.byte_ids)} and {len(self.merged_id)} for {len(self.merges)} merges")
        self.ranks = {pair: r for r, pair in enumerate(self.merges)}
        self.c_cache = None


def merge_chunk(chunk, table):
    """bytes -> list[int] ids by the rule above."""
    ids = [table.byte_ids[b] for b in chunk]
    ranks, no_merge = table.ranks, len(table.merges)
    while len(ids) >= 2:
        # map(dict.get, pairs, defaults) runs in C; min of it is the lowest-rank present pair.
        # NOTE: O(len(chunk)^2); chunks are words, but a megabyte of spaces is one chunk.
        rank = min(map(ranks.get, zip(ids, ids[1:]), repeat(no_merge)))
        if rank == no_merge:
            break
        ids = merge_pair(ids, table.merges[rank], table.merged_id[rank])
    return ids


@kernel
def bpe_merge_chunks(chunks, table):
    """chunks: list of bytes, table: MergeTable -> list of list[int], the ids of each chunk"""
    return [merge_chunk(chunk, table) for chunk in chunks]

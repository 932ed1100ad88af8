"""tinygpt's benchmarks against PyTorch: `python -m bench` runs them all, each script also alone.

train.py (training throughput and MFU), generate.py (greedy generation with and without the KV
cache), memory.py (peak resident memory), kernels.py (per-kernel timings); common.py holds the
timing, machine description and table helpers they share. Not a part of the tinygpt package.
"""

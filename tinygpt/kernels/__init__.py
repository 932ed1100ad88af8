"""The faster versions of tinygpt's kernels: Numba (numba_kernels.py) and C via cffi (c_kernels.py).

Each has the same name, arguments and cache as its NumPy reference in tinygpt/ops; see tinygpt/backend.py.
"""

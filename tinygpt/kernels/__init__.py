"""The faster versions of tinygpt's kernels: Numba (numba_kernels.py) and C via cffi (c_kernels.py).

Each has the same name, arguments and cache as its NumPy reference in tinygpt/ops; see tinygpt/backend/.
The C kernels are compiled at install time (csrc/, see docs/kernels.md); without a compiler they are
simply absent, tinygpt warns once and runs on the others. Nothing is imported here: the backend imports
each module lazily, so a missing build never breaks `import tinygpt`.
"""

"""Build script: everything declarative lives in pyproject.toml; this file only adds the cffi
build of the C kernels in csrc/ (see csrc/build_cffi.py)."""

from setuptools import setup

setup()

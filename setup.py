"""Build script: everything declarative lives in pyproject.toml; this file only adds the cffi
build of the C kernels in csrc/ (see csrc/build_cffi.py).

The C build is optional: without a working compiler the install still succeeds and tinygpt runs
on Numba/NumPy (it warns once, when it first looks for the C kernels). TINYGPT_REQUIRE_C=1 makes
a failed build fail the install, as CI wants.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc"))
from build_cffi import FLAG_SETS  # noqa: E402  (csrc/build_cffi.py, next to the C sources)

REQUIRE_C = os.environ.get("TINYGPT_REQUIRE_C", "").strip().lower() in ("1", "true", "yes")


class OptionalBuildExt(build_ext):
    """build_ext that tries each flag set of csrc/build_cffi.py in turn (-march=native first,
    then plainer ones) and, unless TINYGPT_REQUIRE_C=1, drops an extension that will not build."""

    def run(self):
        try:
            super().run()
        except Exception as error:  # e.g. no compiler at all, found before build_extension
            self._give_up(f"{type(error).__name__}: {error}")

    def build_extensions(self):
        failed = []
        for ext in self.extensions:
            if not self._build_with_fallbacks(ext):
                failed.append(ext)
        # what is not built is not installed: editable installs and wheels look at this list
        self.extensions = [ext for ext in self.extensions if ext not in failed]

    def _build_with_fallbacks(self, ext):
        errors = []
        for compile_args, link_args in FLAG_SETS:
            ext.extra_compile_args, ext.extra_link_args = list(compile_args), list(link_args)
            try:
                self.build_extension(ext)
                return True
            except Exception as error:  # CompileError, LinkError, a missing compiler binary...
                first_line = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
                errors.append(f"  {' '.join(compile_args)}: {type(error).__name__}: {first_line}")
        self._give_up(f"could not compile {ext.name}:\n" + "\n".join(errors))
        return False

    def _give_up(self, reason):
        if REQUIRE_C:
            raise SystemExit(f"TINYGPT_REQUIRE_C=1 and the C kernels did not build: {reason}")
        self.extensions = []
        sys.stderr.write(f"WARNING: tinygpt's C kernels were not built ({reason}). tinygpt will "
                         f"run on Numba/NumPy. Install a C compiler and reinstall to get them.\n")


# The extension uses only CPython's stable ABI (cffi builds it with py_limited_api, hence the
# .abi3.so name), so one wheel tagged cp310-abi3 serves every Python from 3.10 on.
setup(cffi_modules=["csrc/build_cffi.py:ffibuilder"], cmdclass={"build_ext": OptionalBuildExt},
      options={"bdist_wheel": {"py_limited_api": "cp310"}})

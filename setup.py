"""The compiled kernel of passes/features.py (src/qrate/_kernels.c); everything else is in pyproject.toml.

Optional: where no C compiler is at hand the install goes on without it and passes/features.py
computes the same sums with numpy (slower; docs/performance.md).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("qrate._kernels", ["src/qrate/_kernels.c"], optional=True,
                             # no fused multiply-add: the centre sums are the same doubles on every CPU
                             extra_compile_args=["-O3", "-std=c99", "-ffp-contract=off"])])

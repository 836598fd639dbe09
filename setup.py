# The C helpers (the shared-memory rings, the engine's kernels, LV2 hosting over liblilv) are built
# by cffi at install time; everything else about the package lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["bridge/_ringc_build.py:ffibuilder", "dsp/_kernels_build.py:ffibuilder",
                    "plugins/_lv2_build.py:ffibuilder"])

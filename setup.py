# The C helper for the shared-memory rings is built by cffi at install time;
# everything else about the package lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["bridge/_ringc_build.py:ffibuilder", "dsp/_kernels_build.py:ffibuilder"])

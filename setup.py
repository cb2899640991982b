"""Builds the cffi backend's C extension (``qcnn_cffi._qcnn_cffi``); all metadata is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["backends/qcnn_cffi/_build.py:ffibuilder"])

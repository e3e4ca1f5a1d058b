#!/usr/bin/env bash
# Fetch, on a machine with PyPI, the wheels that bench/run_scaling.sh installs on the device
# machine (16 cores, Python 3.12, no network; its image already has typer, rich, matplotlib and
# numpy, but not msgspec, PyNaCl (+ cffi, pycparser) or lmdb). They land in .whl/ (git-ignored;
# name it in the device call's `carry`). About 2.5 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl 'msgspec>=0.18,<0.23' 'PyNaCl>=1.5,<2' 'lmdb>=1.4,<4' 'cffi>=1.4.1' pycparser
ls -l .whl

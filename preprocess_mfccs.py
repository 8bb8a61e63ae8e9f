#!/usr/bin/env python
"""Precompute a dataset's MFCCs (same as `melodex preprocess`). Run `python preprocess_mfccs.py --help`."""
import sys

from melodex.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("preprocess", prog="preprocess_mfccs.py"))

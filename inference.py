#!/usr/bin/env python
"""Classify and embed audio files (same as `melodex infer`). Run `python inference.py --help`."""
import sys

from melodex.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("infer", prog="inference.py"))

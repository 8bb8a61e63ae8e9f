#!/usr/bin/env python
"""Train the genre CNN (same as `melodex train`). Run `python train.py --help`."""
import sys

from melodex.cli import script_main

if __name__ == "__main__":
    sys.exit(script_main("train", prog="train.py"))

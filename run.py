#!/usr/bin/env python3
"""Enhance command line (also installed as the `enhance-faces` console script)."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())

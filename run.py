#!/usr/bin/env python3
"""Enhance command line (also installed as the `enhance-faces` console script)."""

from pipeline.cli import entry

if __name__ == "__main__":
    entry()

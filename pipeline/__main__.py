"""`python -m pipeline COMMAND …` is `run.py COMMAND …`."""

from .cli import entry

entry()

"""`python -m pipeline COMMAND …` is `run.py COMMAND …`."""

import sys

from .cli import main

sys.exit(main())

"""`python -m pthscope.worker`: the isolated parse worker (process.py)."""

import sys

from .process import main

sys.exit(main())

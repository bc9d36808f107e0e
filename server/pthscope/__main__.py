"""`python -m pthscope ...` is the same as the `pthscope` console script."""

import sys

from .cli import main

sys.exit(main())

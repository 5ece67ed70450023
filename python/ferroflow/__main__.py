"""``python -m ferroflow run job.py`` is ``ferroflow run job.py``."""

import sys

from .cli import main

sys.exit(main())

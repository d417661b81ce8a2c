"""``python -m cat_prom.cli``: the same as the ``cat-prom`` console script."""
import sys

from . import main

sys.exit(main())

"""``python -m layerdecay_plugin``: the commands of :mod:`.cli`."""
import sys

from .cli import main

sys.exit(main())

"""``python -m pdeflow``: the ``pdeflow`` command."""
import sys

from pdeflow.cli import main

sys.exit(main())

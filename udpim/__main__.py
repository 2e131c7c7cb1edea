"""``python -m udpim``: the ``udpim`` command."""

import sys

from udpim.cli import main

sys.exit(main())

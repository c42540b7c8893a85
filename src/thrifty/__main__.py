"""``python -m thrifty`` runs the command line."""

import sys

from thrifty.cli import main

sys.exit(main())

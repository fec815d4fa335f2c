"""``python -m solami`` = the ``solami`` command."""

import sys

from solami.cli.main import main

sys.exit(main())

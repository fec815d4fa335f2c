"""``python -m solami_cli`` = the ``solami`` command."""

import sys

from solami_cli.main import main

sys.exit(main())

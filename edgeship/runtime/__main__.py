"""`python -m edgeship.runtime`: the device's command line."""

import sys

from edgeship.runtime.cli import main

sys.exit(main())

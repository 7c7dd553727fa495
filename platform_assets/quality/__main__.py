"""`python -m platform_assets.quality ...`: see platform_assets/quality/cli.py."""

import sys

from platform_assets.quality.cli import main

sys.exit(main())

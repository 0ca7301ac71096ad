"""``python -m ad_gym`` is the ``ad-gym`` command (and ``torchrun -m ad_gym train ...`` trains on several ranks)."""

import sys

from ad_gym.cli import main

sys.exit(main())

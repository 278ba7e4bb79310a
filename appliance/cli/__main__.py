"""``python -m appliance.cli``: the ``footfall`` command."""

import sys

from appliance.cli import main

sys.exit(main())

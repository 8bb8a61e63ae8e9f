"""``python -m melodex`` is the ``melodex`` command."""

import sys

from melodex.cli import main

sys.exit(main())

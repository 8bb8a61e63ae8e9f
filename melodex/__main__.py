"""``python -m melodex`` is the ``melodex`` command."""

import sys

from .cli import main

sys.exit(main())

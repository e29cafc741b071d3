"""``python -m fakesched daemon DIR`` or ``python -m fakesched PERSONALITY COMMAND ARGS...``."""

import sys

from fakesched.core import main

sys.exit(main(sys.argv[1:]))

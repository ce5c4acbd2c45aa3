"""`python -m grpo`: the same entry point as the `grpo` command, for environments where scripts are not on PATH."""

import sys

from grpo.cli import main

sys.exit(main())

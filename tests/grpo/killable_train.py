"""`grpo train` in a subprocess whose checkpoint save at one step pauses half-written, so a test can SIGKILL it
there: the weights and optimizer of that checkpoint are on disk, the trainer state (written last) is not.

Usage: python killable_train.py STEP READY_FILE -- <grpo train arguments>
"""

import sys
import time
from pathlib import Path

from transformers import Trainer

from grpo.cli import main

step, ready = int(sys.argv[1]), Path(sys.argv[2])
save_rng_state = Trainer._save_rng_state


def pausing_save_rng_state(self, output_dir):
    save_rng_state(self, output_dir)
    if self.state.global_step == step:
        ready.write_text(output_dir)
        time.sleep(600)  # the test kills the process here


Trainer._save_rng_state = pausing_save_rng_state
sys.exit(main(sys.argv[sys.argv.index("--") + 1:]))

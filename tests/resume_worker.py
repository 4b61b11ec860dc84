"""Entry point of the kill/resume tests: the cifar10_lt recipe script.

Usage: python resume_worker.py RECIPE_ARGS...
Runs `recipes/cifar10_lt.py` in this process (so the tests can SIGKILL a
real recipe run).
"""

import runpy
import sys
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "cifar10_lt.py"

if __name__ == "__main__":
    sys.argv = [str(RECIPE), *sys.argv[1:]]
    runpy.run_path(str(RECIPE), run_name="__main__")

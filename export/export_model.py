"""Export a trained DL2PA classifier: SavedModel and/or ONNX, parity-checked.

Usage:
    python export/export_model.py RUN_DIR_OR_MODEL --out DIR \
        [--format savedmodel,onnx] [--top-k K] [--tolerance 1e-5]

Same as `keras-dlpa export ...`; see `export/README.md`.
"""

import sys
from pathlib import Path

# Run from a checkout: put the repository root first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_dlpa.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))

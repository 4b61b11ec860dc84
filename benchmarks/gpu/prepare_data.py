"""Writes one cell's prepared splits for the GPU campaign (one `.npz`).

    python benchmarks/gpu/prepare_data.py --image-dir ARCHIVE \
        --imbalance 0.01 --seed 0 --npz-out .campaign/data/cifar100_lt.npz

The recipe flags are those of `keras-dlpa train cifar100_lt` (`--quick`,
`--imbalance`, `--seed`, ...): the file holds exactly the training and
validation splits a run with those flags makes from the archive
(`keras_dlpa.training.sources.write_prepared_splits`), so the box needs
neither the 106 MB archive nor its decoding.
"""

import sys
from pathlib import Path

from keras_dlpa.cli.train import build_parser
from keras_dlpa.cli.train import config_from_args
from keras_dlpa.training.sources import write_prepared_splits

RECIPE = "cifar100_lt"


def main(argv=None) -> int:
    parser = build_parser(RECIPE)
    parser.add_argument("--npz-out", required=True, help="the .npz to write")
    args = parser.parse_args(argv)
    config = config_from_args(RECIPE, args)
    record = write_prepared_splits(config, args.npz_out)
    size = Path(args.npz_out).stat().st_size / 2**20
    print(
        f"{args.npz_out}: {record['train_size']} training + "
        f"{record['val_size']} validation images, {size:.1f} MiB, "
        f"settings {record['settings']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CIFAR-100-LT recipe (paper Table 3): ResNet-32 32/64/128 (d = 128).

Defaults: imbalance 0.01, 200 epochs, batch 128, SGD momentum 0.9, lr 0.1
with 5 linear warm-up epochs and x0.1 at epochs 160 and 180, coupled weight
decay 2e-4, mixup alpha 1.0, IPMLoss(class_scale=True). A balanced
validation split (--val-fraction of each class) is carved from the training
data before the long-tailed profile; the CIFAR-100 test split is evaluated
at the end (last and best-by-validation epochs), never used for selection.
`--dim` other than 128 adds Dense(d, no bias) + BatchNorm after the
backbone features.

Data: TFDS `cifar100`, downloaded where the network allows; offline, put
`cifar-100-binary.tar.gz` into `--manual-dir`.

    python recipes/cifar100_lt.py --method dl2pa
    python recipes/cifar100_lt.py --method softmax --imbalance 0.02
    python recipes/cifar100_lt.py --quick --manual-dir ~/archives
    python recipes/cifar100_lt.py --resume --out runs/cifar100_lt-dl2pa-0.01-0
"""

import sys

from keras_dlpa.cli.train import main

if __name__ == "__main__":
    sys.exit(main(recipe="cifar100_lt"))

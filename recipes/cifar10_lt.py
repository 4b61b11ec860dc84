"""CIFAR-10-LT recipe (paper Table 6): ResNet-32 16/32/64 (d = 64).

Same schedule as CIFAR-100-LT (200 epochs, lr 0.1, 5 warm-up epochs, x0.1 at
160 and 180, wd 2e-4, mixup 1.0, class-scaled IPM loss). Data: TFDS
`cifar10` (or `cifar-10-binary.tar.gz` in --manual-dir), or `--image-dir`
with a class-folder directory or the `.tar.gz` of one, e.g. the CIFAR-10 JPEG
training split (no test split then: results are on the validation split).

    python recipes/cifar10_lt.py \\
        --image-dir ../shared/data/cifar10-jpeg-train.tar.gz
    python recipes/cifar10_lt.py --method softmax --imbalance 0.02
    python recipes/cifar10_lt.py --dataset svhn_cropped   # or stl10 (TFDS)

`--dataset` picks another 10-class TFDS builder (Table 6: SVHN-LT with
`svhn_cropped`, STL-10-LT with `stl10`, 96x96 images), downloaded and
prepared by TFDS on first use (`--data-dir`, `--no-download`).
"""

import sys

from keras_dlpa.cli.train import main

if __name__ == "__main__":
    sys.exit(main(recipe="cifar10_lt"))

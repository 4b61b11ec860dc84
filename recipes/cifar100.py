"""Balanced CIFAR-100 recipe (paper Table 2): ResNet-32 + Dense(64 -> d).

d in {10, 25, 50, 100} (default 50), 250 epochs, batch 128, lr 0.01, x0.1 at
epochs 100 and 200, coupled weight decay 1e-4, no mixup, plain IPM loss
(Eq. 6). Data: TFDS `cifar100` (offline: `cifar-100-binary.tar.gz` in
--manual-dir).

    python recipes/cifar100.py --dim 10
    python recipes/cifar100.py --dim 100 --method etf

Table 8 (prototype distribution, d in {16, 32, 64}): `--method psc_star`
(softmax + 1e-2 x the uniformity loss of its class weights) and `--method
ours_star --softmax-run RUN` (DL2PA on the class weights of the finished
softmax run RUN of the same d):

    python recipes/cifar100.py --dim 32 --method softmax --out runs/s32
    python recipes/cifar100.py --dim 32 --method ours_star \\
        --softmax-run runs/s32
"""

import sys

from keras_dlpa.cli.train import main

if __name__ == "__main__":
    sys.exit(main(recipe="cifar100"))

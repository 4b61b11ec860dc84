"""ImageNet-LT recipe: ResNet-50 + Dense(2048 -> 512, no bias), d = 512.

The reference ImageNet settings: 105 epochs, batch 1024 (global), lr 0.5 with
5 linear warm-up epochs then cosine decay, coupled weight decay 2e-5, mixup
0.2 (our choice; the reference adds TrivialAugment, random erasing and
cutmix, which are not implemented), class-scaled IPM loss. Images are read
from ImageNet-LT list files (`path label` lines, e.g. ImageNet_LT_train.txt,
paths relative to --root) or class-folder directories, resized (shorter
side) and centre-cropped to --image-size, and held in memory (about 17 GB
for the train list at 224 px). Needs GPUs; use --strategy mirrored.

    python recipes/imagenet_lt.py --root /data/imagenet \
        --train-list ImageNet_LT_train.txt --val-list ImageNet_LT_val.txt \
        --test-list ImageNet_LT_test.txt --strategy mirrored
"""

import sys

from keras_dlpa.cli.train import main

if __name__ == "__main__":
    sys.exit(main(recipe="imagenet_lt"))

"""ImageNet-LT recipe (paper Table 5): ResNet-50 + Dense(2048 -> 512), d = 512.

The reference's ImageNet settings: 105 epochs, batch 1024 (global), lr 0.5
with 5 linear warm-up epochs then cosine decay, coupled weight decay 2e-5,
random-resized crop (0.08-1, 3/4-4/3) + flip, TrivialAugment, random
erasing 0.1, mixup 0.2 / cutmix 1.0 (one per batch), class-scaled IPM loss.
Images are streamed: only paths and labels are in memory; each batch is
decoded and augmented in worker processes from the epoch's plan (exact
resume). Sources: ImageNet-LT list files (`path label` lines relative to
--root), a class-folder directory or .tar.gz (--image-dir), or the TFDS
builder `imagenet_lt` (--tfds, ImageNet tars in --manual-dir). Evaluation:
resize to 256, centre crop 224. Needs GPUs; use --strategy mirrored.

    python recipes/imagenet_lt.py --root /data/imagenet \\
        --train-list ImageNet_LT_train.txt --val-list ImageNet_LT_val.txt \\
        --test-list ImageNet_LT_test.txt --strategy mirrored

    # smoke run (64 px, ResNet-8, 2 epochs, progress per batch):
    python recipes/imagenet_lt.py --image-dir DATA/ --quick
"""

import sys

from keras_dlpa.cli.train import main

if __name__ == "__main__":
    sys.exit(main(recipe="imagenet_lt"))

"""Fine-tune a pretrained backbone on your own (long-tailed) class folders.

    python recipes/finetune.py --image-dir DATA/   # DATA/<class>/*.jpg

A stratified validation split is carved per class (--val-fraction, at
least one image per class), the rest trains as it is (no extra
long-tailed profile; --imbalance to add one). The backbone is
keras.applications EfficientNetV2B0 with its ImageNet weights
(--weights imagenet downloads them once; --weights none or a local
`.h5`/`.keras` file avoids the download; --backbone picks another preset,
e.g. resnet50_keras_applications or convnext_tiny). Training: one
frozen-trunk epoch (--freeze-epochs), then the trunk at 0.1x the head's
learning rate (--trunk-lr-scale), cosine decay, TrivialAugment. Images
are streamed (decoded per batch in worker processes), so the folder can
be larger than memory. Results, plots and the model go to --out.
"""

import sys

from keras_dlpa.cli.train import main

if __name__ == "__main__":
    sys.exit(main(recipe="finetune"))

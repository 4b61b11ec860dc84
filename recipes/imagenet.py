"""ImageNet-1K recipe (paper Table 3) and ImageNet-200 (Table 1).

ResNet-50 + Dense(2048 -> 512), 100 epochs, batch 1024, lr 0.5 with 5
warm-up epochs and cosine decay, wd 2e-5, random-resized crop + flip,
plain IPM loss. Images are streamed from class folders (--image-dir
train/, --test-dir val/) or the TFDS builder `imagenet2012` (--tfds,
archives in --manual-dir). `--classes 200` keeps the first 200 classes
(ImageNet-200), `--classes FILE` the classes named in a file; pass
`--dim` for the paper's dimensions (Table 1: d in {25, 50, 100, 200}).

    python recipes/imagenet.py --image-dir /data/imagenet/train \\
        --test-dir /data/imagenet/val --strategy mirrored
    python recipes/imagenet.py --image-dir /data/imagenet/train \\
        --classes 200 --dim 100
    python recipes/imagenet.py --image-dir DATA/ --quick   # smoke run
"""

import sys

from keras_dlpa.cli.train import main

if __name__ == "__main__":
    sys.exit(main(recipe="imagenet"))

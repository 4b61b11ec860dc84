"""The paper's recipes: `ExperimentConfig` defaults, in one place.

`RECIPES[name]` holds a description, the `config` (ExperimentConfig
fields by name, flat: `ExperimentConfig.from_dict`) and the `quick`
overrides of `--quick` (a few minutes on a laptop CPU; a smoke run, not a
result). The recipe scripts, `keras-dlpa train`, `keras-dlpa reproduce`
and the GPU driver all read them from here.
"""

# The paper's long-tailed CIFAR schedule (reference code, notes).
_CIFAR_LT = {
    "source": "tfds",
    "imbalance": 0.01,
    "epochs": 200,
    "batch_size": 128,
    "learning_rate": 0.1,
    "warmup_epochs": 5,
    "milestones": (160, 180),
    "weight_decay": 2e-4,
    "mixup_alpha": 1.0,
    "class_scale": True,
}
_CIFAR_QUICK = {
    "width": 8,
    "depth": 8,
    "epochs": 3,
    "batch_size": 64,
    "warmup_epochs": 1,
    "milestones": (2,),
}

# The reference's ImageNet schedule (Table 5 / Table 3), streamed input.
_IMAGENET = {
    "streaming": True,
    "backbone": "resnet50_imagenet",
    "dim": 512,
    "imbalance": None,
    "image_size": 224,
    "batch_size": 1024,
    "learning_rate": 0.5,
    "warmup_epochs": 5,
    "lr_decay": "cosine",
    "milestones": (),
    "weight_decay": 2e-5,
    "test_split": None,
}
# Tiny images and backbone: minutes on 2 CPU cores, progress per batch.
_IMAGENET_QUICK = {
    "backbone": "resnet8_tiny",
    "image_size": 64,
    "epochs": 2,
    "batch_size": 32,
    "warmup_epochs": 1,
    "verbose": 1,
}

RECIPES = {
    "cifar100_lt": {
        "description": "CIFAR-100-LT, ResNet-32 (32/64/128, d = 128), "
        "imbalance 0.01, 200 epochs (paper Table 4).",
        "config": {
            **_CIFAR_LT,
            "dataset": "cifar100",
            "backbone": "resnet32_lt_cifar100",
        },
        "quick": {**_CIFAR_QUICK, "train_per_class": 100},
    },
    "cifar10_lt": {
        "description": "CIFAR-10-LT, ResNet-32 (16/32/64, d = 64), "
        "imbalance 0.01, 200 epochs (paper Table 6; --dataset "
        "svhn_cropped or stl10 for its SVHN-LT / STL-10-LT columns).",
        "config": {
            **_CIFAR_LT,
            "dataset": "cifar10",
            "backbone": "resnet32_lt_cifar10",
        },
        "quick": {**_CIFAR_QUICK, "train_per_class": 500},
    },
    "cifar100": {
        "description": "Balanced CIFAR-100, ResNet-32 + Dense(64 -> d), "
        "d in {10, 25, 50, 100}, 250 epochs, plain IPM loss (paper "
        "Tables 1-2; Table 8: d in {16, 32, 64}, --method psc_star, "
        "--method ours_star --softmax-run RUN).",
        "config": {
            "dataset": "cifar100",
            "source": "tfds",
            "backbone": "resnet32_cifar100",
            "dim": 50,
            "imbalance": None,
            "epochs": 250,
            "batch_size": 128,
            "learning_rate": 0.01,
            "warmup_epochs": 0,
            "milestones": (100, 200),
            "weight_decay": 1e-4,
            "mixup_alpha": 0.0,
            "class_scale": False,
        },
        "quick": {**_CIFAR_QUICK, "warmup_epochs": 0, "train_per_class": 50},
    },
    "imagenet_lt": {
        "description": "ImageNet-LT, ResNet-50 + Dense(2048 -> 512), "
        "105 epochs, batch 1024, lr 0.5 with 5 warm-up epochs and cosine "
        "decay, wd 2e-5, random-resized crop + flip, TrivialAugment, "
        "random erasing 0.1, mixup 0.2 / cutmix 1.0 (paper Table 5, the "
        "reference's ImageNet settings); images streamed.",
        "config": {
            **_IMAGENET,
            "dataset": "imagenet_lt",
            "source": "image_list",
            "epochs": 105,
            "auto_augment": "trivial",
            "random_erasing": 0.1,
            "mixup_alpha": 0.2,
            "cutmix_alpha": 1.0,
            "class_scale": True,
        },
        "quick": _IMAGENET_QUICK,
    },
    "imagenet": {
        "description": "ImageNet-1K (balanced), ResNet-50 + Dense(2048 -> "
        "512), 100 epochs, batch 1024, lr 0.5, 5 warm-up epochs, cosine, "
        "wd 2e-5, random-resized crop + flip (paper Table 3); "
        "--classes 200 or a class list file for ImageNet-200 (Table 1).",
        "config": {
            **_IMAGENET,
            "dataset": "imagenet2012",
            "source": "image_dir",
            "epochs": 100,
            "mixup_alpha": 0.0,
            "class_scale": False,
        },
        "quick": _IMAGENET_QUICK,
    },
    "finetune": {
        "description": "Fine-tune a pretrained backbone (default "
        "EfficientNetV2B0, --weights imagenet) on your own class folders "
        "(--image-dir): validation carved per class, 1 frozen-trunk "
        "epoch, then the trunk at 0.1x the head's rate; images streamed.",
        "config": {
            "dataset": "image_folder",
            "source": "image_dir",
            "streaming": True,
            "backbone": "efficientnetv2b0",
            "weights": "imagenet",
            "dim": None,
            "imbalance": None,
            "image_size": 224,
            "epochs": 20,
            "batch_size": 32,
            "learning_rate": 0.01,
            "warmup_epochs": 1,
            "lr_decay": "cosine",
            "milestones": (),
            "weight_decay": 1e-4,
            "mixup_alpha": 0.0,
            "auto_augment": "trivial",
            "class_scale": True,
            "freeze_epochs": 1,
            "trunk_lr_scale": 0.1,
            "test_split": None,
        },
        "quick": {
            "backbone": "mobilenetv3small",
            "image_size": 64,
            "epochs": 2,
            "batch_size": 16,
            "warmup_epochs": 0,
        },
    },
}

"""Default configs. Every key a YAML file or override may set is listed here, with its meaning.

Two trees, because the detector and the attribute net are separate models with separate
checkpoints: :func:`get_cfg` (face Mask R-CNN) and :func:`get_attr_cfg` (attribute net).
"""

from __future__ import annotations

from maskface.config.config import CfgNode


def get_cfg() -> CfgNode:
    """Defaults of the face Mask R-CNN (detector + segmenter) and its training."""
    return CfgNode(
        {
            "MODEL": {
                "BACKBONE": "resnet50",  # resnet18 | resnet34 | resnet50 | resnet101 | mobilenet_v3
                "NORM": "GN",  # GN (trains from scratch) | FrozenBN (with ImageNet weights) | BN
                "PRETRAINED": "",  # local .pth (ImageNet backbone or COCO Mask R-CNN); "" = from scratch
                "TRAINABLE_LAYERS": 5,  # backbone stages trained when starting from pretrained weights
                "ANCHOR_SIZES": [16, 32, 64, 128, 256],  # px, one per FPN level; 16 px anchors match ~10 px faces
                "ANCHOR_RATIOS": [1.0, 1.3],  # h/w; faces are slightly taller than wide
                "MIN_SIZE": 800,  # px, shorter side after resize
                "MAX_SIZE": 1333,  # px, longer side cap
                "RPN_PRE_NMS_TOP_N_TRAIN": 2000,
                "RPN_PRE_NMS_TOP_N_TEST": 1000,
                "RPN_POST_NMS_TOP_N_TRAIN": 2000,
                "RPN_POST_NMS_TOP_N_TEST": 1000,
                "BOX_BATCH_SIZE_PER_IMAGE": 512,  # RoIs sampled per image for the box head
                "SCORE_THRESH": 0.5,  # detections below this score are dropped at inference
                "NMS_THRESH": 0.4,  # IoU for box NMS at inference
                "DETECTIONS_PER_IMAGE": 100,
                "MASK_THRESH": 0.5,  # mask probability -> binary mask
                "WEIGHTS": "",  # checkpoint to start from (fine-tuning / evaluation)
            },
            "DATASETS": {
                "TRAIN": [],  # registered names or COCO face JSON paths
                "TRAIN_WEIGHTS": [],  # sampling weight per TRAIN entry; [] = proportional to size
                "TEST": [],
                "IMAGE_ROOT": "",  # image folder for JSON paths whose file names are relative
            },
            "INPUT": {
                "MIN_SIZE_TRAIN": [640, 672, 704, 736, 768, 800],  # scale jitter: one drawn per image
                "MAX_SIZE_TRAIN": 1333,
                "HFLIP_PROB": 0.5,
                "COLOR_JITTER": 0.2,  # brightness/contrast/saturation strength, 0 = off
            },
            "SOLVER": {
                "IMS_PER_BATCH": 8,  # total over all GPUs
                "BASE_LR": 0.02,
                "MOMENTUM": 0.9,
                "WEIGHT_DECAY": 1e-4,
                "MAX_ITER": 90000,
                "STEPS": [60000, 80000],  # LR x GAMMA at these iterations
                "GAMMA": 0.1,
                "WARMUP_ITERS": 1000,
                "CHECKPOINT_PERIOD": 5000,
                "CLIP_GRAD_NORM": 10.0,  # 0 = off
                "AMP": True,  # mixed precision on CUDA (ignored on CPU)
            },
            "TEST": {"EVAL_PERIOD": 0},  # iterations between evaluations; 0 = only at the end
            "DATALOADER": {"NUM_WORKERS": 2},
            "OUTPUT_DIR": "./output",
            "SEED": 42,
        }
    )


def get_attr_cfg() -> CfgNode:
    """Defaults of the attribute net (age, gender, emotion on masked face crops)."""
    return CfgNode(
        {
            "MODEL": {
                "TRUNK": "depthwise",  # depthwise | resnet | gra
                "WIDTH": 32,  # channels of the first stage; later stages double
                "CROP_SIZE": 112,  # px, S of the S x S masked crop
                "CROP_MARGIN": 0.2,  # box grown by this fraction of its size on each side
                "AGE_BINS": 101,  # DEX: one class per year 0..100
                "AGE_HEAD": "dex",  # dex | label_division
                "WEIGHTS": "",
            },
            "DATASETS": {"TRAIN": [], "TRAIN_WEIGHTS": [], "TEST": [], "IMAGE_ROOT": ""},
            "LOSS": {"AGE_WEIGHT": 1.0, "GENDER_WEIGHT": 1.0, "EMOTION_WEIGHT": 1.0},
            "SOLVER": {
                "IMS_PER_BATCH": 128,
                "BASE_LR": 0.002,
                "WEIGHT_DECAY": 5e-4,
                "EPOCHS": 30,
                "WARMUP_ITERS": 200,
                "CHECKPOINT_PERIOD": 1000,
                "AMP": True,
            },
            "DATALOADER": {"NUM_WORKERS": 2},
            "OUTPUT_DIR": "./output/attributes",
            "SEED": 42,
        }
    )

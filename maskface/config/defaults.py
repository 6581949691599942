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
                "DEVICE": "auto",  # auto (CUDA when available) | cpu | cuda | cuda:N
                # resnet18 | resnet34 | resnet50 | resnet101 | mobilenet_v3 | mobilenet_v1_ssh (RetinaFace's
                # face-trained MobileNetV1-0.25 + FPN + SSH pyramid: 3 levels, 64 channels)
                "BACKBONE": "resnet50",
                "NORM": "GN",  # GN (trains from scratch) | FrozenBN (with pretrained weights) | BN
                # local .pth (ImageNet backbone, COCO Mask R-CNN or RetinaFace file), a file name in
                # torch.hub.get_dir()/checkpoints, or "imagenet"; "" = from scratch. Never downloaded;
                # files of known name (retinaface_mobilenet0.25_wider.pth) are sha256-checked.
                "PRETRAINED": "",
                "TRAINABLE_LAYERS": 5,  # backbone stages trained (5 = all); < 5 only with pretrained weights
                "FPN_CHANNELS": 256,  # FPN and RoI feature width; 128 roughly halves FPN + head cost
                # px, one per FPN level (P2..P6), a number or a list of numbers; 16 px anchors on the
                # stride-4 level match ~10 px faces
                "ANCHOR_SIZES": [16, 32, 64, 128, 256],
                # mobilenet_v1_ssh only: px anchor sizes of an extra stride-4 level for faces of ~6-16 px
                # (e.g. [8, 12]; as many sizes as each ANCHOR_SIZES entry); [] = no such level
                "STRIDE4_ANCHORS": [],
                "ANCHOR_RATIOS": [1.0, 1.3],  # h/w; faces are slightly taller than wide
                "RPN_IOU_THRESHOLDS": [0.3, 0.7],  # anchor IoU: background below the first, face from the second
                "MIN_SIZE": 800,  # px, shorter side at inference / evaluation (training: INPUT.MIN_SIZE_TRAIN)
                "MAX_SIZE": 1333,  # px, longer side cap at inference / evaluation
                # how pictures are read (maskface/modeling/read_plan.py): "shorter_side" brings every
                # picture's shorter side to MIN_SIZE (up or down); "native" reads it at its own size,
                # enlarging pictures whose shorter side is under MIN_SIZE, capping the longer at MAX_SIZE
                "RESIZE": "shorter_side",
                # with RESIZE "native": pictures larger than MAX_SIZE are read in MAX_SIZE tiles at their
                # own size (overlap 2 x MERGE_BAND[1]) plus once whole, shrunk, for the large faces;
                # False: shrunk to MAX_SIZE
                "TILE": False,
                # [shorter side, longer cap] px of a second inference pass merged with the first;
                # [] = one pass. The crowd setting reads pictures 3x enlarged and adds a 1x pass for
                # the large faces that the enlargement pushes past the anchors.
                "EXTRA_PASS_SIZE": [],
                # px (face size sqrt(w*h) in the original image): with an extra pass (or tiles), faces
                # under the band come from the pass with the larger input (the tiles) only, faces over
                # it from the other pass only, and inside it both passes' faces compete in NMS
                "MERGE_BAND": [64, 128],
                "RPN_PRE_NMS_TOP_N_TRAIN": 2000,  # proposals kept per FPN level before NMS (training)
                "RPN_PRE_NMS_TOP_N_TEST": 1000,  # same, at inference
                "RPN_POST_NMS_TOP_N_TRAIN": 2000,  # proposals per image after NMS (training)
                "RPN_POST_NMS_TOP_N_TEST": 1000,  # same, at inference: the main speed knob of the RoI heads
                # objectness probability below which proposals are dropped at inference (the best 16
                # always kept): pictures with few faces send few RoIs to the box head; 0 = off
                "RPN_SCORE_THRESH_TEST": 0.0,
                "BOX_BATCH_SIZE_PER_IMAGE": 512,  # RoIs sampled per image for the box head
                "BOX_HEAD_DIM": 1024,  # width of the two FC layers of the box head
                "MASK_HEAD_DIM": 256,  # width of the four 3x3 convs of the mask head
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
                "PASTE": [],  # datasets whose masked faces INPUT.PASTE_PROB pastes (copy-paste)
            },
            "INPUT": {
                "MIN_SIZE_TRAIN": [640, 672, 704, 736, 768, 800],  # scale jitter: one drawn per image
                "MAX_SIZE_TRAIN": 1333,
                "HFLIP_PROB": 0.5,
                "COLOR_JITTER": 0.2,  # brightness/contrast/saturation strength, 0 = off
                # RetinaFace-style random square crops holding a face centre (small faces get
                # larger; faces cut by the crop are ignored, not background); 0 = off
                "CROP_PROB": 0.0,
                "CROP_SCALES": [0.3, 1.0],  # crop side as a fraction of the shorter image side
                "CLOSEUP_PROB": 0.0,  # share of crops that frame one face at 1.0-1.4x its size
                "PASTE_PROB": 0.0,  # copy-paste of DATASETS.PASTE faces (with masks) onto a picture
                "PASTE_COUNT": [1, 12],  # faces pasted per picture (inclusive range)
                "PASTE_SIZES": [8, 160],  # px, larger side of a pasted face, drawn log-uniformly
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
                "LOG_PERIOD": 20,  # iterations between metrics.json / TensorBoard rows
            },
            "TEST": {"EVAL_PERIOD": 0},  # iterations between evaluations; 0 = only at the end
            "DATALOADER": {"NUM_WORKERS": 2},
            "OUTPUT_DIR": "./output",
            "SEED": 42,
        }
    )


def get_attr_cfg() -> CfgNode:
    """Defaults of the attribute net (age, gender, emotion on masked face crops) and its training."""
    return CfgNode(
        {
            "MODEL": {
                "TRUNK": "depthwise",  # depthwise | resnet | gra (gated residual attention)
                "WIDTH": 32,  # channels of the first stage; later stages double
                "DROPOUT": 0.2,  # before the last layer of each head
                "AGE_HEAD": "dex",  # dex (classes + expected value) | label_division (range class + offset)
                "AGE_BINS": 101,  # dex: classes with centres spread over 0..100 years (101 = one per year)
                "AGE_RANGES": 10,  # label_division: equal age ranges over 0..100 years
                # How crops are made (extract_face_crops), part of the model: inference crops the same way.
                "CROP_SIZE": 64,  # px, S of the S x S masked crop
                "CROP_MARGIN": 0.1,  # box grown by this fraction of its size on each side, then squared
                "MASK_DILATE": 1,  # px at crop scale: mask grown before feathering, 0 = off
                "MASK_FEATHER": 1.0,  # px at crop scale: Gaussian sigma of the soft mask edge, 0 = hard
                "MASK_ELLIPSE_UNION": False,  # mask completed by the box's inscribed ellipse (crops.py)
                "WEIGHTS": "",  # checkpoint to start from (fine-tuning); resume uses --resume instead
                # Member configs (paths relative to the file naming them) of an ensemble that averages
                # their nets' probabilities (modeling/attributes/ensemble.py); [] = one net. Inference only.
                "ENSEMBLE": [],
            },
            "DATASETS": {
                "TRAIN": [],  # registered names or COCO face JSON paths
                "TRAIN_WEIGHTS": [],  # sampling share per TRAIN entry, e.g. [1, 1]; [] = proportional to size
                "TEST": [],  # validation sets (per-epoch metrics, best checkpoint)
                "IMAGE_ROOT": "",  # image folder for JSON paths whose file names are relative
            },
            "INPUT": {
                "CACHE_PAD": 4,  # px stored around each crop in the crop cache: room for shift/scale jitter
                "CACHE_JPEG_QUALITY": 88,  # JPEG quality of cached crops (88: ~1.3 KB per 72 px crop)
                "HFLIP_PROB": 0.5,
                "JITTER_SCALE": 0.08,  # crop side scaled by a factor in [1 - s, 1 + s]
                "JITTER_SHIFT": 0.04,  # crop centre shifted by up to this fraction of CROP_SIZE
                "COLOR_JITTER": 0.3,  # contrast/saturation strength around the fill grey, 0 = off
                "GRAYSCALE_PROB": 0.2,  # colour crops turned grey (FER2013 is grey)
                "ROTATE": 0.0,  # degrees: in-plane rotation drawn in [-ROTATE, ROTATE], 0 = off
                "ERASE_PROB": 0.0,  # probability of greying out one random rectangle (occlusion), 0 = off
            },
            "LOSS": {
                "AGE_WEIGHT": 1.0,
                "GENDER_WEIGHT": 1.0,
                "EMOTION_WEIGHT": 1.0,
                "AGE_SIGMA": 2.5,  # years: sigma of DEX's Gaussian soft labels (0 = one-hot)
                "AGE_L1_WEIGHT": 0.1,  # weight of |expected age - age| in years added to the age loss
                # share of annotators' vote distribution (FER+ emotion_votes) in the emotion target of
                # faces that have votes, in [0, 1]; 0 = the labels alone
                "EMOTION_VOTES": 0.0,
                # share of a teacher's gender probabilities (gender_soft, written by convert_annotations.py
                # teacher-labels) in the gender target of faces that have them, in [0, 1]; 0 = the labels
                # alone. Faces with a teacher label and no true gender learn from the teacher alone.
                "GENDER_TEACHER": 0.0,
            },
            "SOLVER": {
                "IMS_PER_BATCH": 256,
                "BASE_LR": 0.002,  # AdamW
                "WEIGHT_DECAY": 0.01,  # AdamW (decoupled); not applied to norms, biases, gates
                "EPOCHS": 30,  # one epoch = as many sampled crops as the training set holds
                "LR_SCHEDULER": "cosine",  # cosine | step (x GAMMA at each of STEPS)
                "STEPS": [20, 27],  # epochs, for the step scheduler
                "GAMMA": 0.1,
                "WARMUP_ITERS": 200,  # linear LR warmup from 0.1 x BASE_LR
                "CHECKPOINT_PERIOD": 1,  # epochs between checkpoints (resume points); one at the end too
                "AMP": True,  # mixed precision on CUDA (bf16 where supported, else fp16); ignored on CPU
                # minutes of wall clock for the whole run (engine/budget_trainer.py): the iterations,
                # and so EPOCHS, are fitted to it from the measured speed; 0 = train EPOCHS epochs
                "TIME_BUDGET": 0.0,
                "CHECKPOINT_MINUTES": 3.0,  # with TIME_BUDGET: minutes between checkpoints + validations
            },
            "TEST": {
                "EVAL_PERIOD": 1,  # epochs between validations
                "IMS_PER_BATCH": 1024,  # evaluation batch
                "FLIP": False,  # average each face with its mirror image at test time (2x compute)
            },
            "DATALOADER": {"NUM_WORKERS": 2},  # threads reading images when the crop cache is built
            "OUTPUT_DIR": "./output/attributes",
            "SEED": 42,
        }
    )

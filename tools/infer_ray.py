#!/usr/bin/env python
"""Run MaskFace on many images with Ray Data: on this machine, or on a Ray cluster.

Needs Ray: pip install -e ".[ray]"

Examples:
    python tools/infer_ray.py --input photos/ --output out/ --workers 2
    python tools/infer_ray.py --input "shots/**/*.jpg" --output out/ --workers 2 --merge   # + results.json
    python tools/infer_ray.py --input list.txt --output out/                 # one path a line
    python tools/infer_ray.py --input images.parquet --path-column uri --output out/
    python tools/infer_ray.py --input s3://bucket/photos/ --output out/ --address auto --workers 16
    python tools/infer_ray.py --input s3://bucket/list.csv --output out/ --address ray://head:10001 \\
        --workers 8 --num-gpus-per-worker 1 --batch-size 16
    python tools/infer_ray.py --input photos/ --output out/ --workers 2      # again: resumes, skips done images
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from maskface.inference.cli import (  # noqa: E402
    add_detection_arguments,
    add_model_arguments,
    add_runtime_arguments,
    check_pad_arguments,
)

OUTPUT_HELP = """\
outputs (in --output DIR):
  shards/parquet/part-<run>-<k>.parquet  one row per image: file, width, height, frame (null), faces (JSON
                                 text of the image's faces in the results.json schema: box, score, mask as
                                 COCO RLE, age, age_std, age_group, gender, gender_prob, emotion,
                                 emotion_probs, track_id), num_faces, error (null, or why the image failed)
  shards/jsonl/part-<run>-<k>.jsonl      the same rows as results.jsonl lines ({"file", "width", "height",
                                 "frame", "faces"} or {"file", "error"}); --format picks one or both
  summary.json                   counts, errors, throughput (images/s), per-worker memory, Ray resources
  config.yaml, attributes_config.yaml    the merged configs; run.json: what produced the shards
  results.json, results.csv      with --merge: the files tools/infer.py writes, rebuilt from all shards
Read the shards with pandas.read_parquet("DIR/shards/parquet") or ray.data.read_parquet(...).
full schema: maskface/inference/SCHEMA.md

resume: a second run with the same --output skips the images already in its shards and tries the failed
ones again (each image is in the shards once); a different model or threshold is refused (use another
--output, or --overwrite).

exit status: 0 when every image was processed, 1 when any failed (listed in the summary and as rows with
their error) or the job stopped on an error, 2 for bad arguments, inputs that match nothing, a model that
cannot be loaded or a Ray that cannot be reached, 128 + the signal's number when stopped by a signal
(130 Ctrl-C, 143 SIGTERM): what was done is kept; run the same command again to go on.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="MaskFace batch inference on Ray Data: faces (box, mask, age, gender, emotion) of many images, "
                    "on this machine or a Ray cluster. Needs pip install -e \".[ray]\".",
        epilog=OUTPUT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("input")
    src.add_argument("--input", nargs="+", metavar="X", required=True,
                     help="image file, folder (recursive), glob pattern (quote it), or a list of image paths: "
                          ".txt (one a line), .csv / .tsv (a 'path' column) or .parquet; local or a URI pyarrow "
                          "reads (s3://, gs://, hdfs://, file://); relative paths in a list are relative to the "
                          "list's folder; e.g. --input photos/ or --input s3://bucket/images.parquet")
    src.add_argument("--path-column", metavar="NAME",
                     help="column of CSV / Parquet lists with the image paths (default: 'path', else 'file'), "
                          "e.g. --path-column uri")
    out = p.add_argument_group("output")
    out.add_argument("--output", required=True, metavar="DIR",
                     help="output folder on this (the driver's) machine, created; e.g. --output out/")
    out.add_argument("--format", default="parquet,jsonl", metavar="F[,F]",
                     help="shard formats: parquet, jsonl or both (default: parquet,jsonl), e.g. --format parquet")
    out.add_argument("--shard-size", type=int, default=5000, metavar="N",
                     help="rows per shard file (also written every 5 minutes), e.g. --shard-size 20000 "
                          "(default: 5000)")
    out.add_argument("--merge", action="store_true",
                     help="also write results.json and results.csv (as tools/infer.py) from all shards at the "
                          "end; for up to some 100k images")
    out.add_argument("--overwrite", action="store_true",
                     help="delete the shards already in --output and start afresh instead of resuming")
    out.add_argument("--quiet", action="store_true", help="no progress bar, only warnings and the summary")
    ray_g = p.add_argument_group("Ray")
    ray_g.add_argument("--address", metavar="ADDR",
                       help="Ray cluster to run on: 'auto' (the cluster this machine belongs to, started with "
                            "`ray start`), 'ray://HOST:10001' (Ray Client), or HOST:6379; default: $RAY_ADDRESS, "
                            "else a new Ray instance on this machine; e.g. --address auto")
    ray_g.add_argument("--workers", type=int, default=1, metavar="N",
                       help="model workers (Ray actors), each loading the model once, e.g. --workers 2 "
                            "(default: 1)")
    ray_g.add_argument("--batch-size", type=int, default=4, metavar="B",
                       help="images per model call in a worker, e.g. --batch-size 16 on a GPU (default: 4)")
    ray_g.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                       help="CPUs each worker reserves; also its PyTorch threads unless --threads (default: 1), "
                            "e.g. --cpus-per-worker 4 for 4 workers on a 16-core node")
    ray_g.add_argument("--num-gpus-per-worker", type=float, default=0.0, metavar="G",
                       help="GPUs each worker reserves: 1 = one GPU each, 0.5 = two workers share one; 0 = CPU "
                            "(default); e.g. --num-gpus-per-worker 1")
    ray_g.add_argument("--num-cpus", type=int, metavar="N",
                       help="CPUs of the local Ray instance this tool starts (default: all of this machine's), "
                            "e.g. --num-cpus 2")
    ray_g.add_argument("--ship-code", action="store_true",
                       help="send this checkout's maskface package to the workers (Ray py_modules), for a cluster "
                            "with torch etc. installed but not MaskFace")
    m = p.add_argument_group("model")
    add_model_arguments(m)
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto",
                   help="device of each worker: auto (CUDA when the worker was given a GPU) | cpu | cuda "
                        "(default: auto)")
    add_runtime_arguments(r)
    add_detection_arguments(r)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def fail(msg: str) -> int:
        print(f"infer_ray.py: error: {msg}", file=sys.stderr)
        return 2

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if not formats or any(f not in ("parquet", "jsonl") for f in formats):
        return fail(f"--format: expected parquet, jsonl or parquet,jsonl, got {args.format!r}")
    if args.workers < 1 or args.batch_size < 1 or args.shard_size < 1:
        return fail("--workers, --batch-size and --shard-size must be >= 1")
    if not args.cpus_per_worker > 0 or not args.num_gpus_per_worker >= 0:
        return fail("--cpus-per-worker must be > 0 and --num-gpus-per-worker >= 0")
    if args.num_cpus is not None and args.num_cpus < 1:
        return fail("--num-cpus must be >= 1")
    if not args.max_megapixels >= 0:
        return fail(f"--max-megapixels must be >= 0 (0 = no cap), got {args.max_megapixels}")
    if args.threads < 0:
        return fail(f"--threads must be >= 0, got {args.threads}")
    try:
        check_pad_arguments(args)
    except ValueError as e:
        return fail(str(e))

    from maskface.distributed import require_ray

    try:
        require_ray()
    except ImportError as e:
        return fail(str(e))

    from maskface.distributed.ray_infer import JobConfigError, RayInferenceJob
    from maskface.inference.cli import predictor_kwargs_from_args
    from maskface.inference.image_io import InputSpecError
    from maskface.utils.logger import setup_logging

    os.makedirs(args.output, exist_ok=True)
    setup_logging(args.output, level=logging.WARNING if args.quiet else logging.INFO)
    try:
        kwargs = predictor_kwargs_from_args(args, device=args.device, score_thresh=args.score_thresh,
                                            mask_thresh=args.mask_thresh, max_size=args.max_size, pad=args.pad,
                                            retry_pad=args.retry_pad)
    except ValueError as e:
        return fail(str(e))
    job = RayInferenceJob(
        args.input, args.output, kwargs, workers=args.workers, batch_size=args.batch_size,
        cpus_per_worker=args.cpus_per_worker, num_gpus_per_worker=args.num_gpus_per_worker, threads=args.threads,
        max_pixels=int(args.max_megapixels * 1e6) or None, formats=formats, shard_rows=args.shard_size,
        path_column=args.path_column, overwrite=args.overwrite, merge=args.merge, address=args.address,
        num_cpus=args.num_cpus, ship_code=args.ship_code, progress=not args.quiet)
    try:
        summary = job.run()
    except (InputSpecError, JobConfigError) as e:
        return fail(str(e))
    except ImportError as e:
        return fail(str(e))
    except ConnectionError as e:
        return fail(f"cannot reach the Ray cluster at {args.address or os.environ.get('RAY_ADDRESS')}: {e}")
    except Exception as e:  # noqa: BLE001 - a model that cannot be loaded, a Ray that cannot start
        return fail(f"cannot start the job: {type(e).__name__}: {e}")
    print(summary.format())
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())

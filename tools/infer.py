#!/usr/bin/env python
"""Run MaskFace on images, folders, globs, videos or a webcam.

Examples:
    python tools/infer.py --input photo.jpg --output out/
    python tools/infer.py --input photos/ --output out/ --coco --batch-size 8
    python tools/infer.py --input "shots/**/*.png" --output out/ --max-size 1600
    python tools/infer.py --input clip.mp4 --output out/ --every-n-frames 2
    python tools/infer.py --webcam 0 --output out/ --show
    python tools/infer.py --input rtsp://cam.local:554/live --output out/ --realtime --duration 600
    python tools/infer.py --input http://127.0.0.1:8080/video.mjpg --output out/ --max-frames 300
    python tools/infer.py --input https://example.org/live/index.m3u8 --output out/ --realtime --attributes-every 5
    python tools/infer.py --input photos/ --output out/ --skip-existing     # resume
    python tools/infer.py --input face_chips/ --output out/ --pad 0.25       # always add a border first
    python tools/infer.py --input photos/ --output out/ --retry-pad 0        # never retry with a border
    python tools/infer.py --input scans/ --output out/ --max-megapixels 250  # allow bigger images
    python tools/infer.py --input photo.jpg --output out/ --runtime onnxruntime --threads 2   # ONNX Runtime
    python tools/infer.py --input photo.jpg --output out/ --runtime onnxruntime --onnx-dir deploy/maskface-lite
    python tools/infer.py --input photos/ --output out/ --anonymize blur --no-vis   # only anonymised copies
    python tools/infer.py --input clip.mp4 --output out/ --anonymize pixelate --score-thresh 0.3 --hold-frames 10
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from maskface.inference.cli import (  # noqa: E402
    ANONYMIZE_HELP,
    add_anonymize_arguments,
    add_detection_arguments,
    add_model_arguments,
    add_runtime_arguments,
    anonymizer_from_args,
    apply_threads,
    check_pad_arguments,
    predictor_from_args,
)

SCHEMA_HELP = """\
outputs (in --output):
  results.json   {"model": {...}, "images": [{"file", "width", "height", "frame",
                  "faces": [{"box": [x1, y1, x2, y2] px, "score", "mask": {"size": [H, W],
                  "counts": RLE str}, "age" years, "age_std" years, "age_group" "25-32",
                  "gender" "female"|"male", "gender_prob", "emotion", "emotion_probs" {name: p},
                  "track_id" int|null}]}], "errors": [{"file", "error"}]}
                 Boxes and masks are in original-image pixels (after EXIF rotation).
                 Attributes are null when the model has no attribute net.
  results.jsonl  the same records, one per line, written as the run goes (--skip-existing)
  results.csv    one row per face (box, score, attributes, emotion probabilities, mask_area)
  coco_results.json + coco_images.json   with --coco
  vis/           annotated images and videos (unless --no-vis)
  anonymized/    with --anonymize: the images and videos with their faces blurred / pixelated /
                 filled (same names as under vis/; no metadata such as EXIF is copied)
  config.yaml, attributes_config.yaml    the merged configs
full schema: maskface/inference/SCHEMA.md

exit status: 0 when every input was processed, 1 when any failed (listed in the summary and
in results.json "errors"), 2 for bad arguments or a model that cannot be loaded, 128 + the
signal's number when stopped by a signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). However the run
ends, results.json / results.csv are written from results.jsonl and every input not finished is
listed in "errors" ("not finished: ..."); --skip-existing then does just those.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="MaskFace inference: faces (box, mask, age, gender, emotion) on images and videos.",
        epilog=SCHEMA_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("input")
    src.add_argument("--input", nargs="+", metavar="X",
                     help="image file, folder (searched recursively), glob pattern (quote it), video file, or a "
                          "stream URL (rtsp://, rtmp://, http(s):// MJPEG / HLS .m3u8 / remote video, udp://, srt://: "
                          "whatever OpenCV's FFmpeg reads), e.g. --input rtsp://cam.local:554/live")
    src.add_argument("--webcam", type=int, metavar="N", help="camera index (cv2.VideoCapture(N))")
    src.add_argument("--color", choices=("bgr", "rgb"), default=None,
                     help="channel order of array inputs in the Python API; irrelevant here (files are decoded "
                          "by the tool)")
    out = p.add_argument_group("output")
    out.add_argument("--output", required=False, metavar="DIR", help="output folder (created)")
    out.add_argument("--no-vis", action="store_true",
                     help="do not write annotated images / videos (with --anonymize: only the anonymised ones)")
    out.add_argument("--show", action="store_true", help="show annotated frames in a window ('q' stops)")
    out.add_argument("--coco", action="store_true", help="also write coco_results.json + coco_images.json")
    out.add_argument("--skip-existing", action="store_true",
                     help="resume: skip inputs already in DIR/results.jsonl or results.json")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    add_anonymize_arguments(p.add_argument_group("anonymisation", ANONYMIZE_HELP))
    m = p.add_argument_group("model")
    add_model_arguments(m)
    m.add_argument("--list-models", action="store_true", help="print the registered model names and exit")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_runtime_arguments(r)
    r.add_argument("--batch-size", type=int, default=4, help="images / frames per forward")
    add_detection_arguments(r)
    r.add_argument("--every-n-frames", type=int, default=1, help="process every N-th video frame")
    r.add_argument("--max-frames", type=int, help="stop each video / stream / the webcam after this many frames")
    r.add_argument("--no-track", action="store_true", help="no face tracking / attribute smoothing in videos")
    r.add_argument("--attributes-every", type=int, default=1, metavar="K",
                   help="videos and streams: run the attribute net on a tracked face only every K-th processed "
                        "frame (always on its first); between, the track carries its smoothed labels. Saves most "
                        "of the attribute net's time on live video, e.g. --attributes-every 5 (default 1: always)")
    live = p.add_argument_group("streams and webcam")
    live.add_argument("--duration", type=float, metavar="S",
                      help="stop each stream / the webcam after S seconds, e.g. --duration 600")
    live.add_argument("--realtime", action="store_true",
                      help="keep up with a live source: always process the newest frame and drop the ones that "
                           "arrived meanwhile (their numbers are missing from the results); frames are processed "
                           "one at a time. Without it every frame is processed and the results lag a source that "
                           "is faster than the model")
    live.add_argument("--reconnect-delay", type=float, default=1.0, metavar="S",
                      help="a dropped stream is reopened after S seconds, the wait doubling after each failed "
                           "attempt up to 5 s (default 1), e.g. --reconnect-delay 0.5")
    live.add_argument("--reconnect-timeout", type=float, default=60.0, metavar="S",
                      help="give a stream up after S seconds without a frame (default 60; 0 = never reconnect); "
                           "it is then listed in results.json errors, its results kept, e.g. --reconnect-timeout 300")
    live.add_argument("--read-timeout", type=float, default=10.0, metavar="S",
                      help="seconds to wait for a stream to connect or send data before it counts as dropped "
                           "(default 10), e.g. --read-timeout 5")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        from maskface.model_zoo import list_models

        print("\n".join(list_models()))
        return 0

    def fail(msg: str) -> int:
        print(f"infer.py: error: {msg}", file=sys.stderr)
        return 2

    if not args.input and args.webcam is None:
        return fail("give --input X (image, folder, glob or video) or --webcam N")
    if not args.output:
        return fail("--output DIR is required")
    if args.batch_size < 1 or args.every_n_frames < 1 or args.attributes_every < 1:
        return fail("--batch-size, --every-n-frames and --attributes-every must be >= 1")
    if args.max_frames is not None and args.max_frames < 1:
        return fail(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.duration is not None and not args.duration > 0:
        return fail(f"--duration must be > 0 seconds, got {args.duration}")
    for flag, v in (("--reconnect-delay", args.reconnect_delay), ("--reconnect-timeout", args.reconnect_timeout),
                    ("--read-timeout", args.read_timeout)):
        if not 0 <= v < float("inf"):
            return fail(f"{flag} must be a number >= 0, got {v}")
    if not args.max_megapixels >= 0:
        return fail(f"--max-megapixels must be >= 0 (0 = no cap), got {args.max_megapixels}")
    try:
        check_pad_arguments(args)
    except ValueError as e:
        return fail(str(e))
    try:
        anonymizer = anonymizer_from_args(args)
    except ValueError as e:
        return fail(str(e))
    if args.color is not None:
        print("note: --color only applies to arrays passed to the Python API; files are decoded as RGB",
              file=sys.stderr)

    from maskface.inference.image_io import InputSpecError, collect_inputs
    from maskface.utils.logger import setup_logging

    os.makedirs(args.output, exist_ok=True)
    setup_logging(args.output, level=logging.WARNING if args.quiet else logging.INFO)
    try:
        inputs = collect_inputs(args.input) if args.input else []
    except InputSpecError as e:
        return fail(str(e))

    from maskface.inference.runner import InferenceRunner

    try:
        apply_threads(args)
        predictor = predictor_from_args(args, device=args.device, score_thresh=args.score_thresh,
                                        mask_thresh=args.mask_thresh, max_size=args.max_size, pad=args.pad,
                                        retry_pad=args.retry_pad)
    except Exception as e:  # noqa: BLE001 - every load failure is reported the same way
        return fail(f"cannot load the model: {e}")

    runner = InferenceRunner(
        predictor, args.output, batch_size=args.batch_size, vis=not args.no_vis, show=args.show,
        skip_existing=args.skip_existing, every_n_frames=args.every_n_frames, coco=args.coco,
        track=not args.no_track, max_frames=args.max_frames, progress=not args.quiet,
        max_pixels=int(args.max_megapixels * 1e6) or None, anonymizer=anonymizer,
        attributes_every=args.attributes_every,
        stream_options=dict(duration=args.duration, realtime=args.realtime, reconnect_delay=args.reconnect_delay,
                            reconnect_timeout=args.reconnect_timeout, open_timeout=args.read_timeout,
                            read_timeout=args.read_timeout))
    try:
        summary = runner.run(inputs, webcam=args.webcam)
    except Exception as e:  # noqa: BLE001 - results.json is written; say what stopped the run
        print(f"infer.py: error: the run stopped: {type(e).__name__}: {e} (results gathered so far are in "
              f"{args.output}/results.json, the inputs not finished listed in its errors)", file=sys.stderr)
        return 1
    print(summary.format())
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())

#!/bin/sh
# The attribute net's run on a lent GPU (issue #28): everything is built here on CPU first, then
# the device machine runs ONE command that trains for a time budget from the crop caches alone
# (maskface/engine/budget_trainer.py: cache on the GPU as uint8, augmentation there, bf16,
# channels-last, LR schedule fitted to the budget, a checkpoint + validation every
# SOLVER.CHECKPOINT_MINUTES, the best weights kept).
#
#   # 1. here (CPU): build $CACHE/train.pt + val.pt from the dataset JSONs, check they can travel
#   TRAIN="['data_coco/utkface_pm3_train.json','data_coco/fer2013_votes_train.json']" \
#   TRAIN_WEIGHTS="[1.0,1.0]" TEST="['data_coco/utkface_pm3_val.json','data_coco/fer2013_votes_val.json']" \
#     sh tools/attribute_gpu_run.sh prepare
#   # 2. on the device (run tool, carry ["attr_cache_gpu"], timeout_s >= MINUTES * 60 + 120):
#   TRAIN_WEIGHTS="[1.0,1.0]" sh tools/attribute_gpu_run.sh train 10
#   # a run cut short goes on from its last checkpoint (the files of step 2 unpacked into $RUN):
#   TRAIN_WEIGHTS="[1.0,1.0]" sh tools/attribute_gpu_run.sh resume 5
#
# Environment (defaults): CONFIG (configs/attributes/attr_resnet_ctx96_gpu.yaml), CACHE
# (attr_cache_gpu, a folder of the checkout that .git/info/exclude ignores, so `carry` can take it),
# RUN (runs/attr_gpu: the training outputs), RESULTS ($OUT on the device machine, else $RUN/packed:
# what comes back, at most 8 files of 16 MiB), MAX_MIB (56: the caches must fit the 64 MiB the
# device machine receives with the checkout), TRAIN / TEST (dataset JSONs, prepare only),
# TRAIN_WEIGHTS (sampling shares, one per TRAIN entry, both steps), EXTRA (more KEY VALUE overrides).
set -eu
cd "$(dirname "$0")/.."
CONFIG=${CONFIG:-configs/attributes/attr_resnet_ctx96_gpu.yaml}
CACHE=${CACHE:-attr_cache_gpu}
RUN=${RUN:-runs/attr_gpu}
MAX_MIB=${MAX_MIB:-56}
TRAIN_WEIGHTS=${TRAIN_WEIGHTS:-[]}
EXTRA=${EXTRA:-}
PY=${PYTHON:-$(command -v python3 || command -v python)}
step=${1:-}
minutes=${2:-10}

case "$step" in
prepare)
    : "${TRAIN:?set TRAIN to the training dataset JSONs, e.g. \"['a_train.json','b_train.json']\"}"
    : "${TEST:?set TEST to the validation dataset JSONs}"
    # shellcheck disable=SC2086
    "$PY" tools/train_attributes.py --config-file "$CONFIG" --cache-dir "$CACHE" --device cpu --prepare-only \
        DATASETS.TRAIN "$TRAIN" DATASETS.TEST "$TEST" DATASETS.TRAIN_WEIGHTS "$TRAIN_WEIGHTS" \
        OUTPUT_DIR "$RUN/prepare" $EXTRA
    case "$CACHE" in  # a folder of the checkout: ignored by git, so that `carry` may take it
    /*) ;;
    *) [ -d .git ] && { grep -qx "/$CACHE/" .git/info/exclude 2>/dev/null || echo "/$CACHE/" >>.git/info/exclude; } ;;
    esac
    mib=$(du -sm "$CACHE" | cut -f1)
    if [ "$mib" -gt "$MAX_MIB" ]; then
        echo "attribute_gpu_run: $CACHE is $mib MiB, over MAX_MIB=$MAX_MIB (the device machine receives 64 MiB" >&2
        echo "  with the checkout): rebuild with EXTRA='INPUT.CACHE_JPEG_QUALITY 75' or fewer faces" >&2
        exit 1
    fi
    echo "attribute_gpu_run: $CACHE ($mib MiB) is ready: run step 2 on the device with carry [\"$CACHE\"]"
    ;;
train | resume)
    flag=""
    [ "$step" = resume ] && flag="--resume"
    results=${RESULTS:-${OUT:-$RUN/packed}}
    mkdir -p "$results" "$RUN"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
    status=0
    # shellcheck disable=SC2086
    "$PY" tools/train_attributes.py --config-file "$CONFIG" --cache-dir "$CACHE" --device cuda $flag \
        --time-budget "$minutes" DATASETS.TRAIN_WEIGHTS "$TRAIN_WEIGHTS" OUTPUT_DIR "$RUN" $EXTRA || status=$?
    # what comes back: the best weights, the newest checkpoint in 15 MiB parts (it holds the
    # optimizer; `cat model_last.pth.part-* > model_XXXX.pth` rebuilds it), the rest as one archive
    [ -f "$RUN/model_best.pth" ] && cp "$RUN/model_best.pth" "$results/"
    last=$(cat "$RUN/last_checkpoint" 2>/dev/null || true)
    [ -n "$last" ] && [ -f "$RUN/$last" ] && split -b 15M "$RUN/$last" "$results/$last.part-"
    tar czf "$results/attr_gpu_run.tgz" -C "$RUN" --exclude='*.pth' .
    ls -l "$results"
    exit "$status"
    ;;
*)
    echo "usage: sh tools/attribute_gpu_run.sh prepare | train [MINUTES] | resume [MINUTES]  (see the header)" >&2
    exit 2
    ;;
esac

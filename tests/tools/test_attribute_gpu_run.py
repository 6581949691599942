"""tools/attribute_gpu_run.sh: the CPU step builds the caches and refuses ones too large to travel
to the device machine; the device step packs what comes back (here, with no cache and no GPU, the
packing after a failed start is what can be checked)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "attribute_gpu_run.sh"
sys.path.insert(0, str(ROOT / "tests" / "modeling" / "attributes"))
from synthetic_faces import write_splits  # noqa: E402

TINY = "MODEL.WIDTH 4 MODEL.CROP_SIZE 16 INPUT.CACHE_PAD 2 TEST.IMS_PER_BATCH 64"


def _run(tmp_path, *args, **env):
    full = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT), CACHE=str(tmp_path / "cache"),
                CONFIG="configs/attributes/attr_depthwise.yaml", RUN=str(tmp_path / "run"), EXTRA=TINY, **env)
    full.pop("OUT", None)
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, env=full, timeout=300)


def test_usage_and_missing_datasets(tmp_path):
    assert _run(tmp_path).returncode == 2
    r = _run(tmp_path, "prepare")
    assert r.returncode != 0 and "TRAIN" in r.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell")
def test_prepare_builds_the_caches_and_checks_their_size(tmp_path):
    splits = write_splits(tmp_path / "data")
    env = dict(TRAIN=repr(splits["train"]), TEST=repr(splits["test"]), TRAIN_WEIGHTS="[1.0,1.0]")
    r = _run(tmp_path, "prepare", MAX_MIB="0", **env)
    assert r.returncode == 1 and "over MAX_MIB=0" in r.stderr  # a cache of under 1 MiB counts as 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["train.pt", "val.pt"]
    r = _run(tmp_path, "prepare", **env)
    assert r.returncode == 0, r.stderr
    assert "on the device" in r.stdout and "is ready" in r.stdout


def test_train_packs_what_there_is_even_when_it_fails(tmp_path):
    # no cache and (here) no CUDA: the training fails, the script still packs the run folder
    r = _run(tmp_path, "train", "0.1", RESULTS=str(tmp_path / "back"))
    assert r.returncode != 0
    assert (tmp_path / "back" / "attr_gpu_run.tgz").is_file()

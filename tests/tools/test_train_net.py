"""tools/train_net.py through its main(): outputs of a short run, exact resume, datasets mixing,
config errors."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "modeling"))
from detector_testing import make_dataset, write_tiny_config  # noqa: E402
from tool_loader import load_tool  # noqa: E402

from maskface.engine.utils import read_metrics  # noqa: E402

train_net = load_tool("train_net")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    data = make_dataset(tmp / "data", num_images=6)
    data2 = make_dataset(tmp / "data2", num_images=3, seed=1, name="other", box_only_fraction=1.0)
    return tmp, write_tiny_config(tmp), data, data2


def _run(cfg_file, out, data, *extra, resume=False):
    argv = ["--config-file", cfg_file] + (["--resume"] if resume else [])
    argv += ["DATASETS.TRAIN", f"['{data}']", "OUTPUT_DIR", str(out), *extra]
    assert train_net.main(argv) == 0


def test_short_run_writes_checkpoints_metrics_and_config(setup):
    tmp, cfg_file, data, data2 = setup
    out = tmp / "run"
    _run(cfg_file, out, data, "DATASETS.TRAIN", f"['{data}', '{data2}']", "DATASETS.TRAIN_WEIGHTS", "[1.0, 2.0]")
    for name in ("config.yaml", "metrics.json", "model_0000002.pth", "model_final.pth", "last_checkpoint", "log.txt"):
        assert (out / name).is_file(), name
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    rows = read_metrics(str(out / "metrics.json"))
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert all(k in rows[-1] for k in ("total_loss", "loss_mask", "loss_box_reg", "lr", "iter_time", "eta_seconds"))
    assert "TRAIN_WEIGHTS: [1.0, 2.0]" in (out / "config.yaml").read_text()
    ckpt = torch.load(out / "model_final.pth", weights_only=False)
    assert ckpt["iteration"] == 3 and {"model", "optimizer", "scheduler", "scaler", "rng_states"} <= set(ckpt)


def test_resume_reproduces_an_uninterrupted_run_exactly(setup):
    tmp, cfg_file, data, _ = setup
    straight, split = tmp / "straight", tmp / "split"
    _run(cfg_file, straight, data, "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "100")
    _run(cfg_file, split, data, "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "100")
    assert torch.load(split / "model_final.pth", weights_only=False)["iteration"] == 2
    _run(cfg_file, split, data, "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "100", resume=True)
    a = torch.load(straight / "model_final.pth", weights_only=False)
    b = torch.load(split / "model_final.pth", weights_only=False)
    assert b["iteration"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows = read_metrics(str(split / "metrics.json"))
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]  # the resumed run went on at 3
    straight_rows = read_metrics(str(straight / "metrics.json"))
    assert rows[3]["total_loss"] == straight_rows[3]["total_loss"]


def test_resume_without_checkpoint_starts_fresh_and_finished_run_is_noop(setup):
    tmp, cfg_file, data, _ = setup
    out = tmp / "fresh"
    _run(cfg_file, out, data, "SOLVER.MAX_ITER", "1", resume=True)
    assert torch.load(out / "model_final.pth", weights_only=False)["iteration"] == 1
    mtime = (out / "model_final.pth").stat().st_mtime_ns
    _run(cfg_file, out, data, "SOLVER.MAX_ITER", "1", resume=True)
    assert (out / "model_final.pth").stat().st_mtime_ns == mtime


def test_config_errors_exit_2(setup, capsys):
    tmp, cfg_file, data, _ = setup
    assert train_net.main(["--config-file", cfg_file, "SOLVER.NOPE", "1"]) == 2
    assert "unknown config key" in capsys.readouterr().err
    assert train_net.main(["--config-file", str(tmp / "missing.yaml")]) == 2
    assert train_net.main(["--config-file", cfg_file]) == 2
    assert "DATASETS.TRAIN is empty" in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        train_net.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "torchrun" in out and "--dist-url" in out

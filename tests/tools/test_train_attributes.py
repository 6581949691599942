import sys
from pathlib import Path

import pytest
import torch

from maskface.config import get_attr_cfg
from maskface.engine.attribute_trainer import AttributeTrainer, lr_factor_fn
from maskface.modeling.attributes import load_attribute_net
from maskface.engine.utils import read_metrics

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "modeling" / "attributes"))
from synthetic_faces import write_splits  # noqa: E402
from tool_loader import load_tool  # noqa: E402

train_attributes = load_tool("train_attributes")

CONFIG = str(ROOT / "configs" / "attributes" / "attr_depthwise.yaml")
TINY = ["MODEL.WIDTH", "4", "MODEL.CROP_SIZE", "16", "INPUT.CACHE_PAD", "2", "SOLVER.IMS_PER_BATCH", "16",
        "SOLVER.WARMUP_ITERS", "2", "TEST.IMS_PER_BATCH", "64"]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return write_splits(tmp_path_factory.mktemp("data"))


def _argv(out: Path, splits: dict, epochs: int, cache: Path, extra=()):
    return ["--config-file", CONFIG, "--cache-dir", str(cache), "--device", "cpu", *extra, "OUTPUT_DIR", str(out),
            "SOLVER.EPOCHS", str(epochs), "DATASETS.TRAIN", repr(splits["train"]), "DATASETS.TEST",
            repr(splits["test"]), *TINY]


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        train_attributes.main(["--help"])
    assert e.value.code == 0
    assert "--resume" in capsys.readouterr().out


def test_bad_config_key_is_reported(tmp_path, capsys):
    assert train_attributes.main(["--config-file", CONFIG, "SOLVER.NOPE", "1"]) == 2
    assert "SOLVER.NOPE" in capsys.readouterr().err


def test_two_epochs_then_resume(splits, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert train_attributes.main(_argv(out, splits, 2, cache)) == 0
    for name in ("model_final.pth", "model_best.pth", "last_checkpoint", "metrics.json", "config.yaml",
                 "eval_best/attribute_metrics.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in cache.iterdir()) == ["train.pt", "val.pt"]
    assert not list(out.glob("model_000*.pth"))  # periodic checkpoints pruned at the end
    rows = read_metrics(str(out / "metrics.json"))
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all("train/loss_age" in r and "val/score" in r for r in rows)
    model, cfg = load_attribute_net(str(out / "model_best.pth"))
    assert cfg.MODEL.WIDTH == 4 and model.crop_kwargs["size"] == 16

    # --resume with more epochs continues from epoch 2 instead of starting over.
    assert train_attributes.main(_argv(out, splits, 3, cache, ["--resume"])) == 0
    rows = read_metrics(str(out / "metrics.json"))
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert torch.load(out / "model_final.pth", weights_only=False)["epoch"] == 3


def test_resume_after_a_crash_is_exact(splits, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert train_attributes.main(_argv(tmp_path / "straight", splits, 3, cache)) == 0

    original = AttributeTrainer._train_epoch

    def crash_in_epoch_3(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(AttributeTrainer, "_train_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_attributes.main(_argv(tmp_path / "crashed", splits, 3, cache))
    assert (tmp_path / "crashed" / "last_checkpoint").read_text() == "model_0002.pth"
    monkeypatch.setattr(AttributeTrainer, "_train_epoch", original)
    assert train_attributes.main(_argv(tmp_path / "crashed", splits, 3, cache, ["--resume"])) == 0

    a = torch.load(tmp_path / "straight" / "model_final.pth", weights_only=False)["model"]
    b = torch.load(tmp_path / "crashed" / "model_final.pth", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_benchmark_flag(capsys):
    assert train_attributes.main(["--config-file", CONFIG, "--benchmark", "MODEL.WIDTH", "4",
                                  "MODEL.CROP_SIZE", "16"]) == 0
    out = capsys.readouterr().out
    assert all(t in out for t in ("depthwise", "resnet", "gra")) and "ms/face" in out


def test_lr_schedules_with_warmup():
    cfg = get_attr_cfg()
    cfg.SOLVER.EPOCHS, cfg.SOLVER.WARMUP_ITERS = 10, 5
    cosine = lr_factor_fn(cfg, iters_per_epoch=10)
    assert cosine(0) == pytest.approx(0.1) and cosine(50) == pytest.approx(0.5) and cosine(100) == pytest.approx(0.0)
    cfg.SOLVER.LR_SCHEDULER, cfg.SOLVER.STEPS, cfg.SOLVER.GAMMA = "step", [4, 8], 0.1
    step = lr_factor_fn(cfg, iters_per_epoch=10)
    assert [step(i) for i in (10, 39, 40, 80)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    cfg.SOLVER.LR_SCHEDULER = "linear"
    with pytest.raises(ValueError, match="cosine or step"):
        lr_factor_fn(cfg, 10)


def test_prepare_only_then_a_time_budget_from_the_caches_alone(splits, tmp_path, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert train_attributes.main(_argv(out, splits, 1, cache, ["--prepare-only"])) == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and "val:" in printed and "on the device" in printed
    assert sorted(p.name for p in cache.iterdir()) == ["train.pt", "val.pt"] and not (out / "last_checkpoint").exists()
    # the caches alone (no dataset files named): a 0.1 minute budget
    argv = ["--config-file", CONFIG, "--cache-dir", str(cache), "--device", "cpu", "--time-budget", "0.1",
            "OUTPUT_DIR", str(out), "DATASETS.TRAIN_WEIGHTS", "[1.0,1.0]", *TINY]
    assert train_attributes.main(argv) == 0
    for name in ("model_final.pth", "model_best.pth", "metrics.json", "eval_best/attribute_metrics.json"):
        assert (out / name).is_file(), name
    final = torch.load(out / "model_final.pth", weights_only=False)
    assert final["plan"]["end"] == final["iteration"] > 0
    assert train_attributes.main(argv[:-len(TINY)] + ["--time-budget", "-1"]) == 2


def test_benchmark_input_prints_both_paths(splits, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert train_attributes.main(_argv(tmp_path / "run", splits, 1, cache, ["--benchmark-input", "1"])
                                 + ["DATALOADER.NUM_WORKERS", "0"]) == 0
    out = capsys.readouterr().out
    assert "device-resident" in out and "DataLoader (0 workers)" in out and "faces/s" in out

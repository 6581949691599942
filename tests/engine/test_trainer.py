"""Trainer pieces: LR schedule, optimizer groups, non-finite loss, RNG state round trip,
model-weights initialisation (MODEL.WEIGHTS) and loading for evaluation."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modeling"))
from detector_testing import make_dataset, tiny_cfg  # noqa: E402

from maskface.engine.trainer import (  # noqa: E402
    DetectorTrainer,
    WarmupMultiStep,
    build_optimizer,
    get_rng_state,
    set_rng_state,
)
from maskface.modeling.face_rcnn import load_detector  # noqa: E402


def test_warmup_then_multistep():
    f = WarmupMultiStep(steps=[10, 20], gamma=0.1, warmup_iters=5, warmup_factor=0.001)
    assert f(0) == pytest.approx(0.001)
    assert f(5) == pytest.approx(1.0) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(0.1) and f(25) == pytest.approx(0.01)
    assert 0.001 < f(2) < 1.0


def test_no_weight_decay_on_norms_and_biases(tmp_path):
    cfg = tiny_cfg(tmp_path)
    trainer = DetectorTrainer(cfg)
    decay, no_decay = trainer.optimizer.param_groups
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == cfg.SOLVER.WEIGHT_DECAY
    gn = trainer.unwrapped_model.backbone.body.bn1.weight  # a GroupNorm despite the name
    assert any(p is gn for p in no_decay["params"]) and not any(p is gn for p in decay["params"])
    n_trainable = sum(1 for p in trainer.unwrapped_model.parameters() if p.requires_grad)
    assert len(decay["params"]) + len(no_decay["params"]) == n_trainable
    assert build_optimizer(cfg, trainer.unwrapped_model).defaults["momentum"] == cfg.SOLVER.MOMENTUM


def test_non_finite_loss_stops_training(tmp_path):
    trainer = DetectorTrainer(tiny_cfg(tmp_path))
    with pytest.raises(FloatingPointError, match="non-finite"):
        trainer._check_finite(torch.tensor(float("nan")), {"loss_mask": torch.tensor(float("nan"))})


def test_rng_state_round_trip():
    state = get_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_weights_init_and_load_detector(tmp_path):
    data = make_dataset(tmp_path / "data", num_images=2)
    cfg = tiny_cfg(tmp_path, ["DATASETS.TRAIN", f"['{data}']"])
    trainer = DetectorTrainer(cfg)
    path = tmp_path / "w.pth"
    torch.save({"model": trainer.unwrapped_model.state_dict()}, path)
    torch.manual_seed(123)
    other = DetectorTrainer(tiny_cfg(tmp_path, ["MODEL.WEIGHTS", str(path)]))
    other.resume_or_load(resume=True)  # no checkpoint in OUTPUT_DIR: falls back to MODEL.WEIGHTS
    assert other.start_iter == 0
    sd = other.unwrapped_model.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in trainer.unwrapped_model.state_dict().items())
    model = load_detector(cfg, str(path), torch.device("cpu"))
    assert not model.training
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_detector(cfg, str(tmp_path / "nope.pth"))
    wrong = tiny_cfg(tmp_path, ["MODEL.FPN_CHANNELS", "16"])
    with pytest.raises(RuntimeError, match="does not match the model"):
        load_detector(wrong, str(path))

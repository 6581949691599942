import sys
from pathlib import Path

import pytest
import torch

from maskface.config import get_attr_cfg
from maskface.data.attribute_dataset import (
    CropCache,
    build_crop_cache,
    cache_meta,
    center_crops,
    crop_record_faces,
    load_crop_cache,
)
from maskface.data.coco_faces import get_dataset
from maskface.engine.attribute_trainer import training_batch
from maskface.engine.budget_trainer import (
    BudgetAttributeTrainer,
    CropCacheDataset,
    DeviceBatches,
    ProgressPlan,
    benchmark_input_paths,
    fit_iterations,
    progress_lr_factor,
)
from maskface.engine.utils import read_metrics
from maskface.modeling.attributes.crops import normalize_crops

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "modeling" / "attributes"))
from synthetic_faces import write_faces  # noqa: E402

S, PAD = 16, 2


def _cfg(out: Path, **solver):
    cfg = get_attr_cfg()
    cfg.MODEL.TRUNK, cfg.MODEL.WIDTH, cfg.MODEL.CROP_SIZE, cfg.INPUT.CACHE_PAD = "depthwise", 4, S, PAD
    cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.BASE_LR = 16, 2, 0.01
    cfg.SOLVER.EPOCHS, cfg.SOLVER.CHECKPOINT_MINUTES = 3, 0.0
    cfg.TEST.IMS_PER_BATCH = 64
    cfg.DATASETS.TRAIN_WEIGHTS = [1.0, 1.0]
    cfg.OUTPUT_DIR = str(out)
    for k, v in solver.items():
        cfg.SOLVER[k] = v
    cfg.freeze()
    return cfg


def _meta(cfg):
    m = cfg.MODEL
    return cache_meta(m.CROP_SIZE, m.CROP_MARGIN, cfg.INPUT.CACHE_PAD, m.MASK_DILATE, m.MASK_FEATHER,
                      ellipse_union=m.MASK_ELLIPSE_UNION)


def synthetic_cache(cfg, n: int = 48, seed: int = 0) -> CropCache:
    """Colour faces (age + gender: colour = gender, brightness = age) and grey ones (emotion =
    brightness), half each, in the cache's real layout."""
    g = torch.Generator().manual_seed(seed)
    side = S + 2 * PAD
    half = n // 2
    gender = torch.randint(0, 2, (half,), generator=g)
    age = torch.randint(1, 90, (half,), generator=g).float()
    emotion = torch.randint(0, 7, (n - half,), generator=g)
    images = torch.randint(0, 30, (n, 3, side, side), generator=g, dtype=torch.uint8)
    shade = (0.4 + 0.6 * age / 90).view(-1, 1, 1)
    images[:half, 0] += (gender.view(-1, 1, 1) * 200 * shade).to(torch.uint8)
    images[:half, 2] += ((1 - gender).view(-1, 1, 1) * 200 * shade).to(torch.uint8)
    images[half:] += (30 + 30 * emotion).view(-1, 1, 1, 1).to(torch.uint8)
    nan = torch.full((n - half,), float("nan"))
    unknown = -torch.ones(n - half, dtype=torch.long)
    return CropCache(images=images, age=torch.cat([age, nan]), gender=torch.cat([gender, unknown]),
                     emotion=torch.cat([-torch.ones(half, dtype=torch.long), emotion]),
                     source=torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(n - half, dtype=torch.long)]),
                     sources=["colour", "grey"], meta=_meta(cfg))


def _val_losses(model, cache, cfg) -> dict:
    model.eval()
    with torch.no_grad():
        out = model(training_batch(cache.images, cfg, None))
        return {k: float(v) for k, v in model.losses(out, cache.targets(torch.arange(len(cache)))).items()}


class FakeClock:
    """Seconds that advance only when a training step runs (``step_s`` each)."""

    def __init__(self, step_s: float = 1.0):
        self.t, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        return self.t


def _timed_steps(monkeypatch, clock: FakeClock) -> None:
    """Training steps that only set the LR and take ``clock.step_s`` fake seconds (the schedule
    logic is under test here, not the net)."""

    def step(self):
        clock.t += clock.step_s if not callable(clock.step_s) else clock.step_s(self.iteration)
        self._set_lr()
        self.iteration += 1
        return torch.zeros(3)

    monkeypatch.setattr(BudgetAttributeTrainer, "_step", step)


def test_progress_lr_factor_and_plan():
    assert progress_lr_factor(0, 0.0, 10) == pytest.approx(0.1)
    assert progress_lr_factor(10, 0.5, 10) == pytest.approx(0.5)
    assert progress_lr_factor(50, 1.0, 10) == pytest.approx(0.0)
    steps = [progress_lr_factor(99, p, 0, "step", (0.5, 0.8), 0.1) for p in (0.4, 0.5, 0.9)]
    assert steps == pytest.approx([1, 0.1, 0.01])
    with pytest.raises(ValueError, match="cosine or step"):
        progress_lr_factor(0, 0.0, 1, "linear")
    plan = ProgressPlan(0, 0.0, 100)
    assert plan.progress(50) == pytest.approx(0.5)
    bent = plan.refit(50, 10)  # a refit continues p and reaches 1 at the new end
    assert bent.progress(50) == pytest.approx(0.5) and bent.progress(55) == pytest.approx(0.75) and bent.done(60)
    assert ProgressPlan().progress(7) == 0.0 and not ProgressPlan().done(10**6)


def test_fit_iterations_leaves_room_for_stops():
    # 600 s, 1 s/it, 10 s validation, 1 s checkpoint, a stop every 120 s
    n = fit_iterations(600, 1.0, 10.0, 1.0, 120.0)
    stops = -(-n // 120)
    assert n + stops * 11 + 1 + 2 * 10 <= 600 * 0.97 and n > 500
    assert fit_iterations(600, 2.0, 10.0, 1.0, 120.0) == pytest.approx(n / 2, abs=2)
    assert fit_iterations(5, 1.0, 10.0, 1.0, 120.0) == 0
    with pytest.raises(ValueError):
        fit_iterations(600, 0.0, 1, 1, 1)


def test_device_batches_balance_sources_and_repeat_under_a_seed():
    cfg = _cfg(Path("."))
    cache = synthetic_cache(cfg, n=40)
    cache.source[:30] = 0  # 30 faces of source 0, 10 of source 1, drawn 1 : 3
    cache.source[30:] = 1
    draw = DeviceBatches(cache, [1.0, 3.0], 4000, torch.Generator().manual_seed(0)).draw()
    assert draw.dtype == torch.int64 and draw.shape == (4000,)
    assert (cache.source[draw] == 1).float().mean() == pytest.approx(0.75, abs=0.03)
    again = DeviceBatches(cache, [1.0, 3.0], 4000, torch.Generator().manual_seed(0)).draw()
    assert torch.equal(draw, again)


def test_batched_augmentation_shapes_dtypes_and_seed():
    cfg = _cfg(Path("."))
    cache = synthetic_cache(cfg, n=12)
    a = training_batch(cache.images, cfg, torch.Generator().manual_seed(3), channels_last=True)
    b = training_batch(cache.images, cfg, torch.Generator().manual_seed(3), channels_last=True)
    c = training_batch(cache.images, cfg, torch.Generator().manual_seed(4), channels_last=True)
    assert a.shape == (12, 3, S, S) and a.dtype == torch.float32
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b) and not torch.equal(a, c)
    still = dict(hflip_prob=0.0, jitter_scale=0.0, jitter_shift=0.0, color_jitter=0.0, grayscale_prob=0.0)
    ident = cfg.clone()  # mutable
    for k, v in still.items():
        ident.INPUT[k.upper()] = v
    # identity augmentation = the evaluation window (pixel centres sampled exactly)
    torch.testing.assert_close(training_batch(cache.images, ident, torch.Generator().manual_seed(0)),
                               training_batch(cache.images, cfg, None), atol=1e-4, rtol=0)


def test_device_batches_match_the_cpu_crops(tmp_path):
    cfg = _cfg(tmp_path)
    json_path = write_faces(tmp_path, "faces", "colour", 6, seed=1)
    records = [dict(r, source="faces") for r in get_dataset(str(json_path))]
    meta = _meta(cfg)
    build_crop_cache(records, S, meta["margin"], tmp_path / "c.pt", pad=PAD, quality=100, dilate=meta["dilate"],
                     feather=meta["feather"])
    cache = load_crop_cache(tmp_path / "c.pt")
    idx = torch.tensor([4, 0, 2])
    on_device = cache.to("cpu")  # the device of the test machine
    batch = training_batch(on_device.images[idx], cfg, None)
    assert torch.equal(batch, normalize_crops(center_crops(cache.images[idx], S)))
    # ... and the crops inference cuts from the images (up to JPEG and the stored window's resampling)
    direct = torch.cat([crop_record_faces(r, S, meta["margin"], meta["dilate"], meta["feather"])[0] for r in records])
    diff = (center_crops(cache.images, S).float() - direct.float()).abs()
    assert diff.mean() < 4.0


def test_training_lowers_the_loss_and_checkpoints(tmp_path):
    cfg = _cfg(tmp_path / "run", EPOCHS=12, BASE_LR=0.03, CHECKPOINT_MINUTES=10.0)
    train, val = synthetic_cache(cfg, 48, 0), synthetic_cache(cfg, 32, 1)
    trainer = BudgetAttributeTrainer(cfg, train, val, device="cpu")
    before = _val_losses(trainer.model, val, cfg)
    result = trainer.train()
    assert result["iteration"] == 12 * 3 and result["epochs"] == pytest.approx(12.0)
    after = _val_losses(trainer.model, val, cfg)
    assert sum(after.values()) < sum(before.values()) and after["loss_gender"] < 0.5 * before["loss_gender"]
    out = tmp_path / "run"
    for name in ("model_final.pth", "model_best.pth", "last_checkpoint", "metrics.json",
                 "eval_best/attribute_metrics.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("model_0*.pth"))
    rows = read_metrics(str(out / "metrics.json"))
    assert len(rows) == 1 and rows[-1]["progress"] == pytest.approx(1.0) and rows[-1]["lr"] < 1e-4
    assert "val/score" in rows[-1]


def test_resume_after_a_crash_is_exact(tmp_path, monkeypatch):
    cfg_a, cfg_b = _cfg(tmp_path / "straight"), _cfg(tmp_path / "crashed")  # a checkpoint every iteration
    train, val = synthetic_cache(cfg_a, 48, 0), None  # no validation: fast (a cut run's best: the test below)
    BudgetAttributeTrainer(cfg_a, train, val, device="cpu").train()
    original = BudgetAttributeTrainer._step

    def crash(self):
        if self.iteration == 5:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(BudgetAttributeTrainer, "_step", crash)
    with pytest.raises(KeyboardInterrupt):
        BudgetAttributeTrainer(cfg_b, train, val, device="cpu").train()
    assert (tmp_path / "crashed" / "last_checkpoint").read_text() == "model_0000005.pth"
    monkeypatch.setattr(BudgetAttributeTrainer, "_step", original)
    resumed = BudgetAttributeTrainer(cfg_b, train, val, device="cpu", resume=True)
    assert resumed.iteration == 5
    resumed.train()
    a = torch.load(tmp_path / "straight" / "model_final.pth", weights_only=False)
    b = torch.load(tmp_path / "crashed" / "model_final.pth", weights_only=False)
    assert a["iteration"] == b["iteration"] == 9
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_schedule_fits_the_budget(tmp_path, monkeypatch):
    minutes = 1.0
    cfg = _cfg(tmp_path, TIME_BUDGET=minutes, CHECKPOINT_MINUTES=0.5, WARMUP_ITERS=50)
    clock = FakeClock(1.0)  # 1 s per iteration, validation and checkpoints free
    _timed_steps(monkeypatch, clock)
    trainer = BudgetAttributeTrainer(cfg, synthetic_cache(cfg, 32), synthetic_cache(cfg, 16, 1), device="cpu",
                                     clock=clock, probe_s=5.0)
    result = trainer.train()
    budget = minutes * 60
    assert result["seconds"] <= budget and result["iteration"] >= 0.85 * budget
    assert trainer.plan.progress(trainer.iteration) == pytest.approx(1.0)  # the LR decayed to 0 in time
    assert 1 <= trainer.warmup_iters <= 0.1 * result["iteration"]  # capped at a tenth of the run (not 50)
    rows = read_metrics(str(tmp_path / "metrics.json"))
    assert len(rows) == 2 and rows[0]["progress"] == pytest.approx(0.5, abs=0.1) and rows[-1]["lr"] < 1e-5


def test_a_slower_device_is_refitted_and_a_cut_run_resumes(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, TIME_BUDGET=2.0, CHECKPOINT_MINUTES=0.5)
    clock = FakeClock(lambda it: 1.0 if it < 20 else 3.0)  # 3x slower after the fit
    _timed_steps(monkeypatch, clock)
    train, val = synthetic_cache(cfg, 32), synthetic_cache(cfg, 16, 1)
    result = BudgetAttributeTrainer(cfg, train, val, device="cpu", clock=clock, probe_s=5.0).train()
    assert result["seconds"] <= 120

    # a run cut after a checkpoint goes on with --resume and a new budget, its plan refitted
    out = tmp_path / "cut"
    cfg = _cfg(out, TIME_BUDGET=1.0, CHECKPOINT_MINUTES=0.2)
    clock = FakeClock(2.0)
    _timed_steps(monkeypatch, clock)
    trainer = BudgetAttributeTrainer(cfg, train, val, device="cpu", clock=clock, probe_s=3.0)
    original = trainer._checkpoint_and_validate
    calls = []

    def cut_after_second(*a, **k):
        row = original(*a, **k)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return row

    trainer._checkpoint_and_validate = cut_after_second
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert (out / "model_best.pth").is_file()  # a cut run has its best weights
    done = trainer.iteration
    clock.t = 0.0  # a new session
    resumed = BudgetAttributeTrainer(cfg, train, val, device="cpu", resume=True, clock=clock, probe_s=3.0)
    assert resumed.iteration == done and 0 < resumed.plan.p0 < 1
    result = resumed.train()
    assert result["seconds"] <= 60 and resumed.plan.progress(resumed.iteration) == pytest.approx(1.0)
    assert (out / "model_final.pth").is_file()


def test_an_epoch_checkpoint_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    (tmp_path / "model_0001.pth").write_bytes(b"")
    torch.save({"model": {}, "epoch": 1, "iteration": 3}, tmp_path / "model_0001.pth")
    (tmp_path / "last_checkpoint").write_text("model_0001.pth")
    with pytest.raises((ValueError, RuntimeError)):
        BudgetAttributeTrainer(cfg, synthetic_cache(cfg, 16), device="cpu", resume=True)


def test_dataloader_baseline_and_speed_rows():
    cfg = _cfg(Path("."))
    cache = synthetic_cache(cfg, 32)
    x, labels = CropCacheDataset(cache, cfg)[3]
    assert x.shape == (3, S, S) and x.dtype == torch.float32 and set(labels) >= {"age", "gender", "emotion"}
    rows = benchmark_input_paths(cfg, cache, "cpu", iters=1, warmup=1, num_workers=0)
    assert [(r["path"], r["phase"]) for r in rows] == [
        ("device-resident", "input"), ("DataLoader (0 workers)", "input"),
        ("device-resident", "train"), ("DataLoader (0 workers)", "train")]
    assert all(r["faces_per_s"] > 0 and r["batch"] == 16 for r in rows)


def test_a_session_limit_stops_with_a_checkpoint_and_resume_finishes_the_plan(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, EPOCHS=20, CHECKPOINT_MINUTES=10.0)  # a fixed plan of 60 iterations
    clock = FakeClock(1.0)
    _timed_steps(monkeypatch, clock)
    train, val = synthetic_cache(cfg, 48), synthetic_cache(cfg, 8, 1)
    result = BudgetAttributeTrainer(cfg, train, val, device="cpu", clock=clock, stop_after_s=30.0).train()
    assert not result["finished"] and 20 <= result["iteration"] < 30
    assert (tmp_path / "last_checkpoint").read_text() == f"model_{result['iteration']:07d}.pth"
    assert not (tmp_path / "model_final.pth").exists()
    clock.t = 0.0  # a new session
    resumed = BudgetAttributeTrainer(cfg, train, val, device="cpu", resume=True, clock=clock)
    assert resumed.plan.end == 60 and resumed.train()["finished"] and resumed.iteration == 60
    assert (tmp_path / "model_final.pth").is_file()

"""Attribute-net training for a wall-clock budget, with the whole crop cache on the device.

Made for a GPU lent for a few minutes (one command, a time budget, weights whatever happens);
it runs the same on CPU.

Data path (no DataLoader, no worker process)
    The crop cache is moved to the device once: uint8 images ``(N, 3, S + 2p, S + 2p)`` and the
    label tensors. Each iteration draws ``B`` face indices on the device (``torch.multinomial``
    over the source-balanced per-face weights of :func:`source_balanced_weights`, with
    replacement), gathers their crops, augments them as one batch (:func:`augment_crops`: flip,
    scale / shift jitter and rotation in one ``grid_sample``, contrast / saturation, greyscale,
    random erasing: the semantics of the epoch trainer, :mod:`attribute_trainer`), normalises them
    and runs the net in channels-last format under bf16 autocast (CUDA with ``SOLVER.AMP``; fp32
    on CPU).

Device memory
    The cache takes ``N x 3 x (S + 2p)^2`` bytes: 80,000 faces at S = 96 with p = 4 (104 px
    stored) take 80,000 x 3 x 104 x 104 = 2.60 GB (N x 3 x 96 x 96 = 2.21 GB for the bare 96 px
    windows), at S = 64, p = 4 (72 px) 1.24 GB; labels add ~60 bytes a face. Any lent GPU holds
    that many times over (an H100 has ~78 GiB). A batch of B = 2,048 crops at
    96 px is 2,048 x 3 x 96 x 96 x 4 = 226 MB in float32 before the net; the trunk's activations
    (a few GB at that batch) dominate. Nothing is copied between host and device in the loop.

Time budget (``SOLVER.TIME_BUDGET`` minutes, counted from ``started_at``, e.g. the process start)
    1. probe: the first iterations run at the warmup LR; after ``PROBE_SKIP`` of them (cuDNN
       autotuning, allocator warm-up) the iterations of the next ``probe_s`` seconds are timed
       (device synchronised). A validation of a slice of the val set is timed before training.
    2. fit: iterations left = training seconds left / seconds per iteration, where the seconds
       left are the budget less a margin (3 % + 2 s), the final checkpoint and two validations
       (best-model choice, report), and a checkpoint + validation every ``CHECKPOINT_MINUTES``.
    3. refit at each checkpoint, from the speed measured since the previous one (a shared or
       throttled device) and the measured checkpoint / validation times.
    The LR is a function of the training progress ``p`` in [0, 1] (cosine: ``0.5 (1 + cos(pi p))``;
    step: x ``GAMMA`` at each ``p >= STEPS[i] / EPOCHS``) times a linear warmup from 0.1 over the
    first ``WARMUP_ITERS`` iterations (at most a tenth of the fitted run). ``p`` rises linearly
    from its value at a fit to 1 at the fitted last iteration, so a refit bends the schedule but
    never makes the LR jump. Without a budget the plan is ``EPOCHS x (N // B)`` iterations, fixed.

Checkpoints and resume
    Every ``CHECKPOINT_MINUTES`` (and at the end) ``model_NNNNNNN.pth`` (the iteration) is written
    atomically with the optimizer, AMP scaler, progress plan and the state of every random
    generator, and the net is validated (``model_best.pth`` = the best validation ``score``; only
    the newest periodic checkpoint is kept; ``model_final.pth`` at the end, with
    ``eval_best/``). A run cut at any moment leaves the last checkpoint and the best weights.
    ``--resume`` continues from ``last_checkpoint``: without a budget exactly as the uncut run
    would have gone on (bit-identical on CPU); with a budget, the rest of the plan is refitted to
    the new session's budget. A session limit (``stop_after_s``, ``--stop-after``) ends a session
    with a checkpoint and a validation and leaves the plan to ``--resume`` (long CPU runs).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Union

import torch

from maskface.config import CfgNode
from maskface.data.attribute_dataset import CropCache, balanced_sampler, source_balanced_weights
from maskface.engine.attribute_trainer import (
    _PERIODIC,
    amp_dtype_for,
    init_from_weights,
    report_best,
    save_best_weights,
    training_batch,
    training_net,
    training_optimizer,
)
from maskface.engine.checkpoint import Checkpointer
from maskface.engine.utils import MetricsWriter
from maskface.evaluation.attribute_metrics import evaluate_attribute_model, flatten_metrics
from maskface.modeling.attributes.net import AttributeNet
from maskface.utils.checkpoint import load_checkpoint_file
from maskface.utils.device import resolve_device
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

#: iterations run before the speed is timed (cuDNN autotuning, allocator warm-up)
PROBE_SKIP = 3
#: faces of the val set validated before training to estimate the validation time
_EVAL_PROBE_FACES = 512
_LOSS_NAMES = ("loss_age", "loss_gender", "loss_emotion")


def progress_lr_factor(iteration: int, progress: float, warmup_iters: int, scheduler: str = "cosine",
                       step_fractions: tuple = (), gamma: float = 0.1) -> float:
    """LR multiplier at ``iteration`` with training ``progress`` in [0, 1]: linear warmup from 0.1
    over ``warmup_iters`` iterations, times cosine decay to 0 over the progress, or x ``gamma``
    at each progress fraction in ``step_fractions``."""
    warm = 1.0 if iteration >= warmup_iters else 0.1 + 0.9 * iteration / max(1, warmup_iters)
    p = min(max(progress, 0.0), 1.0)
    if scheduler == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * p))
    if scheduler == "step":
        return warm * gamma ** sum(p >= f for f in step_fractions)
    raise ValueError(f"SOLVER.LR_SCHEDULER must be cosine or step, got {scheduler!r}")


@dataclass
class ProgressPlan:
    """Training progress ``p(it)``: ``p0`` at iteration ``i0``, rising linearly to 1 at ``end``
    (``end`` ``None``: not fitted yet, ``p`` stays ``p0``)."""

    i0: int = 0
    p0: float = 0.0
    end: Optional[int] = None

    def progress(self, it: int) -> float:
        if self.end is None:
            return self.p0
        if self.end <= self.i0:
            return 1.0
        return min(1.0, self.p0 + (1.0 - self.p0) * (it - self.i0) / (self.end - self.i0))

    def refit(self, it: int, iters_left: int) -> "ProgressPlan":
        """The plan that goes on from ``it`` (continuing ``p``) and ends ``iters_left`` later."""
        return ProgressPlan(it, self.progress(it), it + max(0, int(iters_left)))

    def done(self, it: int) -> bool:
        return self.end is not None and it >= self.end


def fit_iterations(seconds_left: float, sec_per_iter: float, eval_s: float, checkpoint_s: float,
                   period_s: float) -> int:
    """Training iterations that fit ``seconds_left``: less a margin (3 % + 2 s), the end (a
    checkpoint and two validations) and a checkpoint + validation every ``period_s`` seconds of
    training (``period_s`` 0: after every iteration)."""
    if sec_per_iter <= 0:
        raise ValueError(f"seconds per iteration must be > 0, got {sec_per_iter}")
    stop = checkpoint_s + eval_s
    usable = seconds_left * 0.97 - 2.0 - (checkpoint_s + 2.0 * eval_s)
    if usable <= 0:
        return 0
    if period_s <= 0:
        return int(usable // (sec_per_iter + stop))
    train_s = usable - math.ceil(usable / (period_s + stop)) * stop
    return max(0, int(train_s // sec_per_iter))


def _head(cache: CropCache, k: int) -> CropCache:
    """The first ``k`` faces of ``cache`` (views)."""
    votes = None if cache.emotion_votes is None else cache.emotion_votes[:k]
    return CropCache(cache.images[:k], cache.age[:k], cache.gender[:k], cache.emotion[:k], cache.source[:k],
                     list(cache.sources), dict(cache.meta), votes)


def optimizer_step(model: AttributeNet, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   x: torch.Tensor, targets: Dict[str, torch.Tensor],
                   amp_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Forward (autocast to ``amp_dtype`` when given), losses, backward and one optimizer step on
    the batch ``x`` ``(B, 3, S, S)`` normalised; returns the three losses ``(3,)`` detached."""
    with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        out = model(x)
    losses = model.losses(out, targets)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(sum(losses.values())).backward()
    scaler.step(optimizer)
    scaler.update()
    return torch.stack([losses[k].detach().float() for k in _LOSS_NAMES])


class DeviceBatches:
    """Source-balanced batches of face indices drawn on the cache's device.

    Args:
        cache: the training cache, already on its device.
        weights: ``DATASETS.TRAIN_WEIGHTS`` (sampling share per source; empty = by size).
        batch: faces per batch.
        generator: on the cache's device; the only source of randomness of the draws.
    """

    def __init__(self, cache: CropCache, weights, batch: int, generator: torch.Generator):
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        # float32 probabilities: multinomial on CUDA does not take float64
        w = source_balanced_weights(cache.source, list(weights))
        self.probs = (w / w.sum()).float()
        self.batch = int(batch)
        self.generator = generator

    def draw(self) -> torch.Tensor:
        """int64 ``(batch,)`` face indices, on the cache's device."""
        return torch.multinomial(self.probs, self.batch, replacement=True, generator=self.generator)


class BudgetAttributeTrainer:
    """Trains :class:`AttributeNet` on a device-resident crop cache for a time budget (module docstring).

    Args:
        cfg: frozen attribute config (``SOLVER.TIME_BUDGET`` minutes, 0 = ``EPOCHS`` epochs;
            ``SOLVER.CHECKPOINT_MINUTES``; the rest as for :class:`AttributeTrainer`).
        train: training crops (moved to ``device`` once).
        val: validation crops, or ``None`` (no validation, no ``model_best.pth``).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        resume: continue from ``OUTPUT_DIR/last_checkpoint`` when it exists.
        started_at: ``clock()`` value the budget counts from (default: now), e.g. taken when the
            process started, so that loading the cache counts too.
        clock: seconds, monotonic (tests pass a fake one).
        probe_s: seconds of iterations timed to measure the speed (after ``PROBE_SKIP`` iterations).
        stop_after_s: seconds after ``started_at`` at which this session stops with a checkpoint
            (and a validation), leaving the plan for ``resume`` (a long CPU run over several
            sessions); ``None`` = run to the end of the plan.
    """

    def __init__(self, cfg: CfgNode, train: CropCache, val: Optional[CropCache] = None,
                 device: Union[str, torch.device] = "auto", resume: bool = False,
                 started_at: Optional[float] = None, clock: Callable[[], float] = time.monotonic,
                 probe_s: float = 10.0, stop_after_s: Optional[float] = None):
        s = cfg.SOLVER
        if list(cfg.MODEL.ENSEMBLE):
            raise ValueError("MODEL.ENSEMBLE is set: train each member with its own config, then combine "
                             "them with tools/make_ensemble.py")
        if s.TIME_BUDGET < 0 or s.CHECKPOINT_MINUTES < 0:
            raise ValueError(f"SOLVER.TIME_BUDGET ({s.TIME_BUDGET}) and SOLVER.CHECKPOINT_MINUTES "
                             f"({s.CHECKPOINT_MINUTES}) must be >= 0 (minutes)")
        if len(train) == 0:
            raise ValueError("the training crop cache is empty")
        progress_lr_factor(0, 0.0, 1, s.LR_SCHEDULER)  # checks the scheduler name before any work
        if stop_after_s is not None and stop_after_s <= 0:
            raise ValueError(f"stop_after_s must be > 0 seconds, got {stop_after_s}")
        self.cfg, self.clock, self.probe_s, self.stop_after_s = cfg, clock, float(probe_s), stop_after_s
        self.started_at = clock() if started_at is None else float(started_at)
        self.budget_s = float(s.TIME_BUDGET) * 60.0
        self.period_s = float(s.CHECKPOINT_MINUTES) * 60.0
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.cuda = self.device.type == "cuda"
        self.out_dir = cfg.OUTPUT_DIR
        self.model = training_net(cfg, self.device)
        self.train_set = train.to(self.device)
        self.val_set = val.to(self.device) if val is not None else None
        self.batch = min(s.IMS_PER_BATCH, len(train))
        self.iters_per_epoch = max(1, len(train) // self.batch)
        self.sample_gen = torch.Generator(device=self.device).manual_seed(int(cfg.SEED) * 2 + 1)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(int(cfg.SEED) * 2 + 2)
        self.batches = DeviceBatches(self.train_set, cfg.DATASETS.TRAIN_WEIGHTS, self.batch, self.sample_gen)
        self.optimizer = training_optimizer(self.model, cfg)
        self.amp_dtype = amp_dtype_for(cfg, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.checkpointer = Checkpointer(self.model, self.out_dir, optimizer=self.optimizer, scaler=self.scaler)
        self.step_fractions = tuple(e / max(1, s.EPOCHS) for e in s.STEPS)
        self.iteration, self.best_score = 0, None
        self.warmup_iters = int(s.WARMUP_ITERS)
        self.plan = ProgressPlan() if self.budget_s > 0 else ProgressPlan(0, 0.0, s.EPOCHS * self.iters_per_epoch)
        self.eval_s, self.checkpoint_s = 0.0, 1.0  # estimates until measured
        last = self.checkpointer.last_checkpoint() if resume else None
        if last:
            self._load(last)
        elif resume:
            logger.info("--resume: no checkpoint in %s, starting from scratch", self.out_dir)
        if not last and cfg.MODEL.WEIGHTS:
            init_from_weights(self.model, cfg.MODEL.WEIGHTS)

    # --- state ----------------------------------------------------------------------------------
    def _rng_state(self) -> Dict[str, Optional[torch.Tensor]]:
        return {"sampler": self.sample_gen.get_state(), "augment": self.aug_gen.get_state(),
                "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(self.device) if self.cuda else None}

    def _load(self, path: str) -> None:
        extra = self.checkpointer.load(path, resume=True)
        if "plan" not in extra or "rng" not in extra:
            raise ValueError(f"{path}: not a checkpoint of the time-budget trainer (no progress plan); resume it "
                             "without --time-budget / SOLVER.TIME_BUDGET, or start in another OUTPUT_DIR")
        self.iteration, self.best_score = int(extra["iteration"]), extra.get("best_score")
        best = Path(self.out_dir) / "model_best.pth"
        if best.is_file():  # periodic checkpoints are written before their validation
            self.best_score = load_checkpoint_file(str(best)).get("score", self.best_score)
        self.plan, self.warmup_iters = ProgressPlan(**extra["plan"]), int(extra["warmup_iters"])
        self.eval_s, self.checkpoint_s = float(extra.get("eval_s", 0.0)), float(extra.get("checkpoint_s", 1.0))
        rng = extra["rng"]
        self.sample_gen.set_state(rng["sampler"])
        self.aug_gen.set_state(rng["augment"])
        torch.set_rng_state(rng["torch"])
        if self.cuda and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        if self.budget_s > 0:  # a new session's budget: the rest of the plan is refitted to it
            self.plan = ProgressPlan(self.iteration, self.plan.progress(self.iteration), None)
        logger.info("Resumed from %s at iteration %d (progress %.3f)", path, self.iteration,
                    self.plan.progress(self.iteration))

    def _save(self, name: str) -> None:
        self.checkpointer.save(name, iteration=self.iteration, plan=asdict(self.plan), warmup_iters=self.warmup_iters,
                               rng=self._rng_state(), best_score=self.best_score, eval_s=self.eval_s,
                               checkpoint_s=self.checkpoint_s, epoch=self._epochs(), cfg=self.cfg.dump())
        keep = f"{name}.pth"  # only the newest periodic checkpoint; none next to model_final
        for p in Path(self.out_dir).iterdir():
            if _PERIODIC.match(p.name) and p.name != keep:
                p.unlink()

    def _epochs(self) -> float:
        return self.iteration * self.batch / len(self.train_set)

    # --- steps ----------------------------------------------------------------------------------
    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _set_lr(self) -> float:
        s = self.cfg.SOLVER
        factor = progress_lr_factor(self.iteration, self.plan.progress(self.iteration), self.warmup_iters,
                                    s.LR_SCHEDULER, self.step_fractions, s.GAMMA)
        for g in self.optimizer.param_groups:
            g["lr"] = s.BASE_LR * factor
        return s.BASE_LR * factor

    def _step(self) -> torch.Tensor:
        """One training iteration; returns the three losses ``(3,)`` detached, on the device."""
        self._set_lr()
        idx = self.batches.draw()
        x = training_batch(self.train_set.images[idx], self.cfg, self.aug_gen, channels_last=self.cuda)
        losses = optimizer_step(self.model, self.optimizer, self.scaler, x, self.train_set.targets(idx),
                                self.amp_dtype)
        self.iteration += 1
        return losses

    def _validate(self) -> Dict[str, float]:
        """Validate, keep the best weights; returns flat metrics (empty without a val set)."""
        if self.val_set is None:
            return {}
        t0 = self.clock()
        metrics = evaluate_attribute_model(self.model, self.val_set, self.device, self.cfg.TEST.IMS_PER_BATCH)
        self.eval_s = self.clock() - t0
        score = metrics["score"]
        if score is not None and (self.best_score is None or score > self.best_score):
            self.best_score = score
            save_best_weights(self.model, self.cfg, self.out_dir, self._epochs(), score, metrics)
        return flatten_metrics(metrics)

    def _estimate_eval_s(self) -> None:
        if self.val_set is None or self.eval_s > 0:
            return
        k = min(len(self.val_set), _EVAL_PROBE_FACES)
        t0 = self.clock()
        evaluate_attribute_model(self.model, _head(self.val_set, k), self.device, self.cfg.TEST.IMS_PER_BATCH)
        self.eval_s = (self.clock() - t0) * len(self.val_set) / k

    def _seconds_left(self) -> float:
        return self.budget_s - (self.clock() - self.started_at)

    def _fit(self, sec_per_iter: float) -> None:
        left = fit_iterations(self._seconds_left(), sec_per_iter, self.eval_s, self.checkpoint_s, self.period_s)
        first = self.plan.end is None
        self.plan = self.plan.refit(self.iteration, left)
        if first:
            self.warmup_iters = min(self.warmup_iters, max(1, self.plan.end // 10))
        logger.info("%s: %.3f s/iteration, %d iterations left (to %d, %.2f epochs), validation ~%.1f s, "
                    "checkpoint ~%.1f s, %.0f s of the budget left", "Fitted" if first else "Refitted",
                    sec_per_iter, left, self.plan.end, self.plan.end * self.batch / len(self.train_set),
                    self.eval_s, self.checkpoint_s, self._seconds_left())

    def _stop_row(self, sums: torch.Tensor, n: int, faces_per_s: float) -> Dict[str, float]:
        avg = (sums / max(1, n)).tolist()
        if n and not all(math.isfinite(v) for v in avg):
            raise FloatingPointError(f"iteration {self.iteration}: non-finite training loss "
                                     f"{dict(zip(_LOSS_NAMES, avg))}; lower SOLVER.BASE_LR or set SOLVER.AMP False")
        row = {f"train/{k}": v for k, v in zip(_LOSS_NAMES, avg)} if n else {}
        if n:
            row["train/loss_total"] = sum(avg)
        row.update({"lr": self.optimizer.param_groups[0]["lr"], "epoch": self._epochs(),
                    "progress": self.plan.progress(self.iteration), "train/faces_per_s": faces_per_s})
        return row

    # --- loop -------------------------------------------------------------------------------------
    def train(self) -> Dict[str, object]:
        """Train until the plan ends (with a budget: or time runs out; with ``stop_after_s``: or the
        session ends, ``finished`` False); returns ``{"iteration", "epochs", "best_score", "seconds",
        "faces_per_s", "finished", "last"}`` (``last``: the final flat metrics)."""
        cfg, budget = self.cfg, self.budget_s > 0
        writer = MetricsWriter(self.out_dir)
        logger.info("Training %s (%d params) on %s: %d faces on the device (%.1f MB), batch %d, %s, from "
                    "iteration %d", cfg.MODEL.TRUNK, sum(p.numel() for p in self.model.parameters()), self.device,
                    len(self.train_set), self.train_set.images.numel() / 1e6, self.batch,
                    f"budget {self.budget_s / 60:.1f} min" if budget else f"{self.plan.end} iterations",
                    self.iteration)
        self.model.train()
        if budget or self.stop_after_s is not None:  # time left for the validations at the end
            self._estimate_eval_s()
        sums, n_since = torch.zeros(3, device=self.device), 0
        probe_start: Optional[float] = None
        probe_it = self.iteration + PROBE_SKIP
        fitted = not budget
        last_stop = seg_start = self.clock()
        seg_it = self.iteration
        last: Dict[str, float] = {}
        bar = progress_bar(total=self.plan.end, initial=self.iteration, desc="train", unit="it", disable=None)
        session_end = None if self.stop_after_s is None else self.started_at + self.stop_after_s
        cut = False
        try:
            while not self.plan.done(self.iteration):
                if session_end is not None and self.clock() > session_end - self.checkpoint_s - self.eval_s - 2.0:
                    logger.info("Session limit reached at iteration %d of %s: checkpoint for --resume",
                                self.iteration, self.plan.end)
                    cut = True
                    break
                if budget and fitted and self._seconds_left() < self.checkpoint_s + 2.0 * self.eval_s + 2.0:
                    logger.warning("Budget nearly spent at iteration %d of %s (progress %.3f): stopping early",
                                   self.iteration, self.plan.end, self.plan.progress(self.iteration))
                    break
                sums += self._step()
                n_since += 1
                bar.update(1)
                if not fitted:
                    if self.iteration == probe_it:
                        self._sync()
                        probe_start = self.clock()
                    elif probe_start is not None:
                        spent = self.clock() - probe_start
                        if spent >= self.probe_s or spent >= 0.05 * self.budget_s:
                            self._sync()
                            spent = self.clock() - probe_start
                            self._fit(spent / (self.iteration - probe_it))
                            fitted = True
                            bar.total = self.plan.end
                            seg_start, seg_it = self.clock(), self.iteration
                if self.plan.done(self.iteration):
                    break
                if self.clock() - last_stop >= self.period_s and (fitted or not budget):
                    self._sync()
                    now = self.clock()
                    faces_per_s = (self.iteration - seg_it) * self.batch / max(now - seg_start, 1e-9)
                    last = self._checkpoint_and_validate(sums, n_since, faces_per_s, writer)
                    if budget and self.iteration > seg_it:
                        self._fit((now - seg_start) / (self.iteration - seg_it))
                        bar.total = self.plan.end
                    sums.zero_()
                    n_since = 0
                    last_stop = seg_start = self.clock()
                    seg_it = self.iteration
            self._sync()
            now = self.clock()
            faces_per_s = (self.iteration - seg_it) * self.batch / max(now - seg_start, 1e-9)
            last = self._checkpoint_and_validate(sums, n_since, faces_per_s, writer, final=not cut)
        finally:
            bar.close()
            writer.close()
        if not cut:
            report_best(self.out_dir, self.val_set, self.device, cfg.TEST.IMS_PER_BATCH)
        seconds = self.clock() - self.started_at
        logger.info("Done at iteration %d (%.2f epochs, progress %.3f) after %.1f s; best validation score %s",
                    self.iteration, self._epochs(), self.plan.progress(self.iteration), seconds,
                    "n/a" if self.best_score is None else f"{self.best_score:.4f}")
        return {"iteration": self.iteration, "epochs": self._epochs(), "best_score": self.best_score,
                "seconds": seconds, "faces_per_s": last.get("train/faces_per_s"), "finished": not cut, "last": last}

    def _checkpoint_and_validate(self, sums: torch.Tensor, n: int, faces_per_s: float, writer: MetricsWriter,
                                 final: bool = False) -> Dict[str, float]:
        row = self._stop_row(sums, n, faces_per_s)
        if final:
            row.update(self._validate())
            self._save("model_final")
        else:  # weights first: a run cut during the validation keeps them
            t0 = self.clock()
            self._save(f"model_{self.iteration:07d}")
            self.checkpoint_s = self.clock() - t0
            row.update(self._validate())
        writer.write(self.iteration, row)
        logger.info("iteration %d  %s", self.iteration,
                    "  ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
        self.model.train()
        return row



# --- the conventional input path, as the baseline of the speed comparison ---------------------------
class CropCacheDataset(torch.utils.data.Dataset):
    """Per-face view of a crop cache on the CPU for a ``torch.utils.data.DataLoader``: item ``i`` is
    ``(crop, labels)``, the crop float32 ``(3, S, S)`` normalised, augmented alone on the CPU with
    the same augmentation (:func:`training_batch` on a batch of one, a generator per item).

    The input path most training loops use (a sampler, worker processes, per-item augmentation,
    collation, a copy to the device); :func:`benchmark_input_paths` times it against
    :class:`DeviceBatches` + batched augmentation on the device.
    """

    def __init__(self, cache: CropCache, cfg: CfgNode, seed: int = 0):
        self.cache, self.cfg, self.seed = cache.to("cpu"), cfg, int(seed)
        self.draws = 0

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int):
        self.draws += 1  # per worker process: each draw of the same face augments differently
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i) * 7919 + self.draws)
        x = training_batch(self.cache.images[i : i + 1], self.cfg, gen)[0]
        return x, {k: v[0] for k, v in self.cache.targets(torch.tensor([i])).items()}


def benchmark_input_paths(cfg: CfgNode, cache: CropCache, device: Union[str, torch.device] = "cpu",
                          iters: int = 10, warmup: int = 2, num_workers: int = 2) -> list:
    """Faces/s of training iterations (net of ``cfg``, batch ``SOLVER.IMS_PER_BATCH``) fed by the
    device-resident path and by a DataLoader over :class:`CropCacheDataset` with ``num_workers``
    processes, and of each input path alone (batches made, no net).

    Returns rows ``{"path", "phase" ("input" | "train"), "batch", "faces_per_s", "ms_per_iter"}``;
    ``warmup`` untimed iterations first (DataLoader: its workers started, first batches made).
    """
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    cuda = device.type == "cuda"
    batch = min(cfg.SOLVER.IMS_PER_BATCH, len(cache))
    model = training_net(cfg, device)
    optimizer = training_optimizer(model, cfg)
    amp_dtype = amp_dtype_for(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    on_device = cache.to(device)
    gen = torch.Generator(device=device).manual_seed(int(cfg.SEED))
    draws = DeviceBatches(on_device, cfg.DATASETS.TRAIN_WEIGHTS, batch, gen)

    def device_batch():
        idx = draws.draw()
        return training_batch(on_device.images[idx], cfg, gen, channels_last=cuda), on_device.targets(idx)

    loader = torch.utils.data.DataLoader(
        CropCacheDataset(cache, cfg, cfg.SEED), batch_size=batch, num_workers=num_workers,
        sampler=balanced_sampler(cache.source, cfg.DATASETS.TRAIN_WEIGHTS, batch * (2 * (iters + warmup) + 2),
                                 torch.Generator().manual_seed(int(cfg.SEED))),
        pin_memory=cuda, drop_last=True, persistent_workers=num_workers > 0)
    loader_iter = iter(loader)

    def loader_batch():
        x, targets = next(loader_iter)
        x = x.to(device, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last) if cuda else x
        return x, {k: v.to(device, non_blocking=True) for k, v in targets.items()}

    def timed(make, train: bool) -> float:
        for i in range(warmup + iters):
            if i == warmup:
                if cuda:
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
            x, targets = make()
            if train:
                optimizer_step(model, optimizer, scaler, x, targets, amp_dtype)
        if cuda:
            torch.cuda.synchronize(device)
        return (time.perf_counter() - t0) / iters

    rows = []
    for phase, train in (("input", False), ("train", True)):
        for name, make in (("device-resident", device_batch), (f"DataLoader ({num_workers} workers)", loader_batch)):
            sec = timed(make, train)
            rows.append({"path": name, "phase": phase, "batch": batch, "faces_per_s": batch / sec,
                         "ms_per_iter": 1e3 * sec})
    del loader_iter
    return rows

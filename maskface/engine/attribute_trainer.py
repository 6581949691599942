"""Training loop of the attribute net on an in-memory crop cache (CPU, or one CUDA GPU).

The whole training set sits as one uint8 tensor on the training device; each batch is drawn by a
source-balanced sampler, augmented on the device (:func:`augment_crops`) and normalised, so there
is no data loader and no worker process: an epoch costs only the forward/backward passes.

Epochs and resume
    One epoch = ``len(train)`` sampled faces (``len(train) // batch`` iterations). Everything random
    in epoch ``e`` (sampler draws, augmentation, dropout) is seeded from ``(SEED, e)``, and
    checkpoints are written at epoch ends (every ``SOLVER.CHECKPOINT_PERIOD`` epochs) with the
    optimizer, LR scheduler and AMP scaler, so ``--resume`` continues exactly as an uninterrupted
    run would have (bit-identical on CPU). Only the newest ``model_NNNN.pth`` is kept.

Outputs in ``OUTPUT_DIR``
    ``model_NNNN.pth`` / ``model_final.pth`` (+ ``last_checkpoint``), ``model_best.pth`` (weights of
    the epoch with the best validation ``score``: the mean of gender accuracy, emotion accuracy and
    age CS@5, see :mod:`maskface.evaluation.attribute_metrics`), ``metrics.json`` (+ TensorBoard),
    ``eval_best/`` (metrics JSON and confusion-matrix PNGs of the best model on the validation set).
    Every checkpoint holds the merged config as YAML text under ``"cfg"``, so
    :func:`load_attribute_net` rebuilds the net from the file alone.
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import yaml

from maskface.config import CfgNode
from maskface.data.attribute_dataset import CropCache, augment_crops, balanced_sampler, center_crops
from maskface.engine.checkpoint import Checkpointer
from maskface.engine.utils import MetricsWriter, seed_all
from maskface.evaluation.attribute_metrics import evaluate_attribute_model, flatten_metrics, save_attribute_report
from maskface.modeling.attributes.crops import normalize_crops
from maskface.modeling.attributes.ensemble import AttributeEnsemble, build_attribute_model, load_attribute_net, member_configs
from maskface.modeling.attributes.net import AttributeNet
from maskface.utils.checkpoint import load_checkpoint_file, load_model_weights
from maskface.utils.device import resolve_device
from maskface.utils.io import atomic_write
from maskface.utils.progress import progress_bar

logger = logging.getLogger(__name__)

_PERIODIC = re.compile(r"^model_\d{4,}\.pth$")


def lr_factor_fn(cfg: CfgNode, iters_per_epoch: int) -> Callable[[int], float]:
    """Iteration -> LR multiplier: linear warmup from 0.1 over ``WARMUP_ITERS``, times a cosine
    decay to 0 over all epochs, or a step decay (x ``GAMMA`` at each epoch of ``STEPS``)."""
    s = cfg.SOLVER
    total = max(1, s.EPOCHS * iters_per_epoch)
    if s.LR_SCHEDULER not in ("cosine", "step"):
        raise ValueError(f"SOLVER.LR_SCHEDULER must be cosine or step, got {s.LR_SCHEDULER!r}")

    def factor(it: int) -> float:
        warm = 1.0 if it >= s.WARMUP_ITERS else 0.1 + 0.9 * it / s.WARMUP_ITERS
        if s.LR_SCHEDULER == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(it, total) / total))
        epoch = it // iters_per_epoch
        return warm * s.GAMMA ** sum(epoch >= e for e in s.STEPS)

    return factor


def training_batch(images: torch.Tensor, cfg: CfgNode, generator: Optional[torch.Generator],
                   channels_last: bool = False) -> torch.Tensor:
    """Net input of one training batch, made on ``images.device``.

    Args:
        images: uint8 ``(B, 3, S + 2p, S + 2p)`` stored crops (``CropCache.images[index]``).
        cfg: attribute config (``MODEL.CROP_SIZE``, the ``INPUT`` augmentation keys).
        generator: on ``images.device``, the only source of randomness of the augmentation;
            ``None``: no augmentation, the centre ``S x S`` window as evaluation reads it.
        channels_last: return the batch in channels-last memory format (faster convolutions on CUDA).

    Returns:
        float32 ``(B, 3, S, S)`` normalised crops (:func:`normalize_crops`: fill grey -> 0).
    """
    inp = cfg.INPUT
    if generator is None:
        x = center_crops(images, cfg.MODEL.CROP_SIZE)
    else:
        x = augment_crops(images, cfg.MODEL.CROP_SIZE, generator, hflip_prob=inp.HFLIP_PROB,
                          jitter_scale=inp.JITTER_SCALE, jitter_shift=inp.JITTER_SHIFT,
                          color_jitter=inp.COLOR_JITTER, grayscale_prob=inp.GRAYSCALE_PROB,
                          rotate=inp.ROTATE, erase_prob=inp.ERASE_PROB)
    x = normalize_crops(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def amp_dtype_for(cfg: CfgNode, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype of training on ``device``: bf16 on CUDA where supported, else fp16, with
    ``SOLVER.AMP``; ``None`` (fp32) on CPU or with AMP off."""
    if not (cfg.SOLVER.AMP and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def save_best_weights(model: torch.nn.Module, cfg: CfgNode, out_dir: str, epoch: float, score: float,
                      metrics: dict) -> None:
    """Write ``out_dir/model_best.pth`` (weights, config, ``epoch``, validation ``score`` and metrics) atomically."""
    path = Path(out_dir) / "model_best.pth"
    with atomic_write(path, "wb") as f:
        torch.save({"model": model.state_dict(), "cfg": cfg.dump(), "epoch": epoch,
                    "score": score, "metrics": metrics}, f)
    logger.info("New best validation score %.4f at epoch %.4g -> %s", score, epoch, path)


def report_best(out_dir: str, val: Optional[CropCache], device: torch.device, batch_size: int) -> None:
    """Evaluate ``out_dir/model_best.pth`` on ``val`` and write ``out_dir/eval_best/`` (metrics
    JSON, confusion-matrix PNGs); nothing without a validation set or a best model."""
    best = Path(out_dir) / "model_best.pth"
    if val is None or not best.is_file():
        return
    model, _ = load_attribute_net(str(best), device)
    metrics = evaluate_attribute_model(model, val, device, batch_size)
    save_attribute_report(metrics, Path(out_dir) / "eval_best")


def training_net(cfg: CfgNode, device: torch.device) -> AttributeNet:
    """The net of ``cfg`` on ``device``, initialised under ``SEED``; on CUDA in channels-last
    format with cuDNN autotuning."""
    seed_all(cfg.SEED)
    model = AttributeNet.from_config(cfg).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    return model


def init_from_weights(model: torch.nn.Module, path: str) -> None:
    """Load the weights of checkpoint ``path`` (``MODEL.WEIGHTS``: fine-tuning) strictly into ``model``."""
    data = load_checkpoint_file(path)
    load_model_weights(model, data.get("model", data), source=path)
    logger.info("Initialised from %s", path)


def training_optimizer(model: torch.nn.Module, cfg: CfgNode) -> torch.optim.AdamW:
    """AdamW at ``SOLVER.BASE_LR`` with ``SOLVER.WEIGHT_DECAY`` on conv / linear weights only."""
    return torch.optim.AdamW(_param_groups(model, cfg.SOLVER.WEIGHT_DECAY), lr=cfg.SOLVER.BASE_LR)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list:
    """Weight decay on conv / linear weights only (not on norms, biases, attention gates)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class AttributeTrainer:
    """Trains :class:`AttributeNet` from crop caches (see the module docstring).

    Args:
        cfg: frozen attribute config (:func:`maskface.config.get_attr_cfg` + file + overrides).
        train: training crops (moved to ``device``).
        val: validation crops, or ``None`` (then no per-epoch metrics and no ``model_best.pth``).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.
        resume: continue from ``OUTPUT_DIR/last_checkpoint`` when it exists.
    """

    def __init__(self, cfg: CfgNode, train: CropCache, val: Optional[CropCache] = None,
                 device: Union[str, torch.device] = "auto", resume: bool = False):
        self.cfg = cfg
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.out_dir = cfg.OUTPUT_DIR
        self.cuda = self.device.type == "cuda"
        if list(cfg.MODEL.ENSEMBLE):
            raise ValueError("MODEL.ENSEMBLE is set: an ensemble is not trained as one net; train each member "
                             "with its own config, then combine them with tools/make_ensemble.py")
        self.model = training_net(cfg, self.device)
        self.train_set = train.to(self.device)
        self.val_set = val.to(self.device) if val is not None else None
        self.batch = min(cfg.SOLVER.IMS_PER_BATCH, len(train))
        self.iters_per_epoch = max(1, len(train) // self.batch)
        self.optimizer = training_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor_fn(cfg, self.iters_per_epoch))
        self.amp_dtype = amp_dtype_for(cfg, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.checkpointer = Checkpointer(self.model, self.out_dir, optimizer=self.optimizer,
                                         scheduler=self.scheduler, scaler=self.scaler)
        self.start_epoch, self.iteration, self.best_score = 0, 0, None
        last = self.checkpointer.last_checkpoint() if resume else None
        if last:
            extra = self.checkpointer.load(last, resume=True)
            self.start_epoch, self.iteration = int(extra["epoch"]), int(extra["iteration"])
            self.best_score = extra.get("best_score")
            logger.info("Resumed from %s: %d epochs done (iteration %d)", last, self.start_epoch, self.iteration)
        elif resume:
            logger.info("--resume: no checkpoint in %s, starting from scratch", self.out_dir)
        if not last and cfg.MODEL.WEIGHTS:
            init_from_weights(self.model, cfg.MODEL.WEIGHTS)

    # ------------------------------------------------------------------------------------------
    def _epoch_seed(self, epoch: int, stream: int) -> int:
        return (int(self.cfg.SEED) * 1_000_003 + epoch * 7 + stream) % (2**63)

    def _train_epoch(self, epoch: int) -> Dict[str, float]:
        cfg, data = self.cfg, self.train_set
        seed_all(self._epoch_seed(epoch, 0))
        sampler_gen = torch.Generator().manual_seed(self._epoch_seed(epoch, 1))
        aug_gen = torch.Generator(device=self.device).manual_seed(self._epoch_seed(epoch, 2))
        n = self.iters_per_epoch * self.batch
        order = torch.tensor(list(balanced_sampler(data.source, cfg.DATASETS.TRAIN_WEIGHTS, n, sampler_gen)),
                             device=self.device)
        self.model.train()
        sums = torch.zeros(3, device=self.device)
        names = ("loss_age", "loss_gender", "loss_emotion")
        t0 = time.perf_counter()
        bar = progress_bar(range(self.iters_per_epoch), desc=f"epoch {epoch + 1}/{cfg.SOLVER.EPOCHS}", unit="it",
                   leave=False, disable=None)
        for it in bar:
            idx = order[it * self.batch : (it + 1) * self.batch]
            x = training_batch(data.images[idx], cfg, aug_gen, channels_last=self.cuda)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                out = self.model(x)
            losses = self.model.losses(out, data.targets(idx))
            loss = sum(losses.values())
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            sums += torch.stack([losses[k].detach().float() for k in names])
        self.iteration += self.iters_per_epoch
        secs = time.perf_counter() - t0
        avg = (sums / self.iters_per_epoch).tolist()
        if not all(math.isfinite(v) for v in avg):
            raise FloatingPointError(f"epoch {epoch + 1}: non-finite training loss {dict(zip(names, avg))}; "
                                     "lower SOLVER.BASE_LR or set SOLVER.AMP False")
        row = {f"train/{k}": v for k, v in zip(names, avg)}
        row.update({"train/loss_total": sum(avg), "lr": self.optimizer.param_groups[0]["lr"], "epoch": epoch + 1,
                    "train/faces_per_s": n / max(secs, 1e-9)})
        return row

    def _save_best(self, epoch: int, score: float, metrics: dict) -> None:
        save_best_weights(self.model, self.cfg, self.out_dir, epoch, score, metrics)

    def _prune_periodic(self, keep: str) -> None:
        for p in Path(self.out_dir).iterdir():
            if _PERIODIC.match(p.name) and p.name != keep:
                p.unlink()

    def train(self) -> Dict[str, object]:
        """Run the remaining epochs; returns ``{"epochs", "iteration", "best_score", "last"}``
        (``last``: the final epoch's flat metrics)."""
        cfg = self.cfg
        epochs = cfg.SOLVER.EPOCHS
        writer = MetricsWriter(self.out_dir)
        logger.info("Training %s (%d params) on %s: %d faces, batch %d, %d it/epoch, epochs %d..%d",
                    cfg.MODEL.TRUNK, sum(p.numel() for p in self.model.parameters()), self.device,
                    len(self.train_set), self.batch, self.iters_per_epoch, self.start_epoch + 1, epochs)
        last: Dict[str, float] = {}
        try:
            for epoch in range(self.start_epoch, epochs):
                last = self._train_epoch(epoch)
                final = epoch + 1 == epochs
                if self.val_set is not None and ((epoch + 1) % cfg.TEST.EVAL_PERIOD == 0 or final):
                    metrics = evaluate_attribute_model(self.model, self.val_set, self.device, cfg.TEST.IMS_PER_BATCH)
                    last.update(flatten_metrics(metrics))
                    score = metrics["score"]
                    if score is not None and (self.best_score is None or score > self.best_score):
                        self.best_score = score
                        self._save_best(epoch + 1, score, metrics)
                writer.write(self.iteration, last)
                logger.info("epoch %d/%d  %s", epoch + 1, epochs,
                            "  ".join(f"{k}={v:.4g}" for k, v in last.items() if k != "epoch"))
                extra = {"epoch": epoch + 1, "iteration": self.iteration, "best_score": self.best_score,
                         "cfg": cfg.dump()}
                if final:
                    self.checkpointer.save("model_final", **extra)
                    self._prune_periodic(keep="")
                elif (epoch + 1) % cfg.SOLVER.CHECKPOINT_PERIOD == 0:
                    name = f"model_{epoch + 1:04d}"
                    self.checkpointer.save(name, **extra)
                    self._prune_periodic(keep=f"{name}.pth")
        finally:
            writer.close()
        if self.start_epoch >= epochs:
            logger.info("Nothing to do: %d of %d epochs already done in %s", self.start_epoch, epochs, self.out_dir)
        self._report_best()
        return {"epochs": epochs, "iteration": self.iteration, "best_score": self.best_score, "last": last}

    def _report_best(self) -> None:
        report_best(self.out_dir, self.val_set, self.device, self.cfg.TEST.IMS_PER_BATCH)


# settings that make a net's weights mean what its config says: trained at another crop size or
# window, the same weights would load without complaint and read faces wrongly
_MEMBER_KEYS = ("TRUNK", "WIDTH", "AGE_HEAD", "CROP_SIZE", "CROP_MARGIN", "MASK_DILATE", "MASK_FEATHER",
                "MASK_ELLIPSE_UNION")


def combine_ensemble_weights(cfg: CfgNode, member_weights: Sequence[str], output: str) -> AttributeEnsemble:
    """Write one weights file for the ensemble config ``cfg`` (``MODEL.ENSEMBLE`` lists N member
    configs) from N trained member checkpoints, in the same order.

    Each checkpoint must load strictly into its member, and when it stores its training config
    (:class:`AttributeTrainer` checkpoints do), that config must agree with the member's on the
    architecture and crop settings (``_MEMBER_KEYS``). The output holds ``{"model": state_dict,
    "cfg": cfg as YAML}`` (written atomically), so :func:`load_attribute_net` and
    ``evaluate.py attributes`` read it alone. Returns the ensemble (eval mode, CPU).
    """
    cfgs = member_configs(cfg)
    if not cfgs:
        raise ValueError("the config has no MODEL.ENSEMBLE members; it describes a single net")
    if len(member_weights) != len(cfgs):
        raise ValueError(f"the config lists {len(cfgs)} ensemble members ({', '.join(cfg.MODEL.ENSEMBLE)}) "
                         f"but {len(member_weights)} weights files were given")
    model = build_attribute_model(cfg, cfgs)
    for i, (member, mcfg, path) in enumerate(zip(model.members, cfgs, member_weights)):
        data = load_checkpoint_file(path)
        if "cfg" in data:
            trained = yaml.safe_load(data["cfg"]).get("MODEL", {})
            bad = [k for k in _MEMBER_KEYS if k in trained and trained[k] != mcfg.MODEL[k]]
            if bad:
                was = ", ".join(f"MODEL.{k}={trained[k]!r}" for k in bad)
                now = ", ".join(f"MODEL.{k}={mcfg.MODEL[k]!r}" for k in bad)
                raise ValueError(f"{path}: trained with {was}, but member {i}'s config {cfg.MODEL.ENSEMBLE[i]} "
                                 f"has {now}: give the weights in the order of MODEL.ENSEMBLE")
        load_model_weights(member, data.get("model", data), source=path)
    with atomic_write(output, "wb") as f:
        torch.save({"model": model.state_dict(), "cfg": cfg.dump()}, f)
    logger.info("Wrote ensemble of %d nets to %s", len(cfgs), output)
    return model.eval()

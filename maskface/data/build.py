"""Datasets, samplers and data loaders for the detector.

Training reads an *infinite, deterministic* stream of samples:

* :class:`TrainingSampler` draws dataset indices chunk by chunk ("epochs" of ``len(dataset)``
  draws), chunk ``c`` from a generator seeded with ``(seed, c)``: a random permutation, or, when
  several datasets are mixed with weights (``DATASETS.TRAIN_WEIGHTS``), draws with replacement
  where dataset ``d`` of ``n_d`` images is picked with probability ``w_d / sum(w)``.
* Global position ``g`` of the stream belongs to iteration ``g // total_batch``; each rank takes
  its own contiguous slice of every iteration's batch (a sharded sampler: it replaces
  ``DistributedSampler`` for iteration-based training, with no ``set_epoch`` to forget).
* Each sample is augmented with ``numpy.random.default_rng((seed, g))``, so the augmentation of a
  sample depends on its position alone, not on worker count or process history.

Resuming at iteration ``i`` starts the stream at ``g = i * total_batch``: exactly the samples and
augmentations an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from maskface.data.coco_faces import get_dataset

logger = logging.getLogger(__name__)


def load_datasets(names: Sequence[str], image_root: Optional[str] = None) -> List[List[dict]]:
    """Records of each dataset (registered name or COCO face JSON path)."""
    if not names:
        raise ValueError("no dataset given (DATASETS.TRAIN / DATASETS.TEST is empty)")
    out = []
    for name in names:
        recs = get_dataset(name, image_root or None)
        if not recs:
            raise ValueError(f"dataset {name!r} has no images")
        out.append(recs)
    return out


def mixing_probabilities(sizes: Sequence[int], weights: Sequence[float]) -> Optional[np.ndarray]:
    """Per-image sampling probabilities of the concatenated datasets, or ``None`` for uniform
    sampling (no weights: every image equally likely, i.e. datasets in proportion to size)."""
    if not weights:
        return None
    if len(weights) != len(sizes):
        raise ValueError(f"DATASETS.TRAIN_WEIGHTS has {len(weights)} entries for {len(sizes)} datasets")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"DATASETS.TRAIN_WEIGHTS must be >= 0 with a positive sum, got {list(weights)}")
    p = np.concatenate([np.full(n, w / n, dtype=np.float64) for n, w in zip(sizes, weights)])
    return p / p.sum()


class TrainingSampler(Sampler):
    """Infinite stream of ``(dataset_index, global_position)`` for one rank (see module doc).

    Args:
        size: number of images (all datasets concatenated).
        batch_size: images per iteration on this rank.
        seed: stream seed (same on every rank).
        rank, world_size: this process's slice of every iteration's total batch.
        start_iter: first iteration (for resume).
        probs: per-image probabilities for weighted mixing (None = permutations).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_iter: int = 0,
        probs: Optional[np.ndarray] = None,
    ):
        if size <= 0:
            raise ValueError("TrainingSampler needs a non-empty dataset")
        self.size, self.batch_size, self.seed = size, batch_size, int(seed)
        self.rank, self.world_size, self.start_iter = rank, world_size, start_iter
        self.probs = probs
        self._chunk_id, self._chunk = -1, None

    def index_at(self, g: int) -> int:
        c, off = divmod(g, self.size)
        if c != self._chunk_id:
            rng = np.random.default_rng([self.seed, c])
            self._chunk = rng.permutation(self.size) if self.probs is None else rng.choice(self.size, self.size, p=self.probs)
            self._chunk_id = c
        return int(self._chunk[off])

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        total = self.batch_size * self.world_size
        it = self.start_iter
        while True:
            first = it * total + self.rank * self.batch_size
            for g in range(first, first + self.batch_size):
                yield self.index_at(g), g
            it += 1


class InferenceSampler(Sampler):
    """Each rank gets a contiguous shard of ``range(size)``, every index exactly once."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        per = -(-size // world_size)
        self.indices = list(range(min(size, rank * per), min(size, (rank + 1) * per)))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class MapDataset(Dataset):
    """``records[i]`` through ``mapper``; keys ``(i, g)`` seed the augmentation with ``(seed, g)``."""

    def __init__(self, records: List[dict], mapper: Callable, seed: int = 0):
        self.records, self.mapper, self.seed = records, mapper, int(seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            idx, g = key
            rng = np.random.default_rng([self.seed, 1, int(g)])
        else:
            idx, rng = key, np.random.default_rng([self.seed, 2, int(key)])
        rec = self.records[idx]
        image, target = self.mapper(rec, rng)
        return image, target, rec


def trivial_collate(batch):
    """List of ``(image, target, record)`` -> ``(images, targets, records)`` lists."""
    return tuple(list(x) for x in zip(*batch)) if batch else ([], [], [])


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)  # loader workers must not compete with the model's threads


def build_train_loader(
    records_per_dataset: Sequence[List[dict]],
    mapper: Callable,
    *,
    batch_size: int,
    weights: Sequence[float] = (),
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    start_iter: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """Infinite loader of ``(images, targets, records)`` batches of ``batch_size`` (per rank)."""
    records = [r for recs in records_per_dataset for r in recs]
    probs = mixing_probabilities([len(r) for r in records_per_dataset], weights)
    if probs is not None:
        logger.info(
            "Mixing %d datasets with weights %s (sizes %s)",
            len(records_per_dataset),
            list(weights),
            [len(r) for r in records_per_dataset],
        )
    sampler = TrainingSampler(len(records), batch_size, seed, rank, world_size, start_iter, probs)
    return DataLoader(
        MapDataset(records, mapper, seed),
        batch_sampler=BatchSampler(sampler, batch_size, drop_last=True),
        num_workers=num_workers,
        collate_fn=trivial_collate,
        worker_init_fn=_worker_init if num_workers else None,
        # A private generator: creating the loader's iterator must not consume the global torch
        # RNG, which the model's proposal sampling uses (exact resume).
        generator=torch.Generator().manual_seed(int(seed)),
        persistent_workers=False,
        pin_memory=False,
    )


def build_test_loader(
    records: List[dict], mapper: Callable, *, rank: int = 0, world_size: int = 1, num_workers: int = 0, batch_size: int = 1
) -> DataLoader:
    """Each rank's shard of ``records``, in order, through the (non-augmenting) mapper."""
    return DataLoader(
        MapDataset(records, mapper),
        sampler=InferenceSampler(len(records), rank, world_size),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=trivial_collate,
        worker_init_fn=_worker_init if num_workers else None,
    )

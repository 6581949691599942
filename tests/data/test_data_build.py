"""Samplers and loaders: deterministic infinite stream, rank sharding, resume offsets, weighted
mixing of datasets, inference sharding."""

from collections import Counter
from itertools import islice

import numpy as np
import pytest

from maskface.data.build import InferenceSampler, TrainingSampler, build_train_loader, mixing_probabilities


def _take(sampler, n):
    return list(islice(iter(sampler), n))


def test_stream_is_deterministic_and_covers_each_epoch():
    a = _take(TrainingSampler(10, 2, seed=3), 20)
    b = _take(TrainingSampler(10, 2, seed=3), 20)
    assert a == b
    assert sorted(i for i, _ in a[:10]) == list(range(10))  # first "epoch" is a permutation
    assert [g for _, g in a] == list(range(20))
    assert _take(TrainingSampler(10, 2, seed=4), 10) != a[:10]


def test_resume_continues_the_same_stream():
    full = _take(TrainingSampler(7, 3, seed=1), 30)
    resumed = _take(TrainingSampler(7, 3, seed=1, start_iter=4), 18)
    assert resumed == full[12:30]


def test_ranks_take_disjoint_slices_of_each_iteration():
    single = _take(TrainingSampler(9, 4, seed=0), 12)  # 3 iterations of 4
    r0 = _take(TrainingSampler(9, 2, seed=0, rank=0, world_size=2), 6)
    r1 = _take(TrainingSampler(9, 2, seed=0, rank=1, world_size=2), 6)
    for it in range(3):
        assert r0[2 * it: 2 * it + 2] + r1[2 * it: 2 * it + 2] == single[4 * it: 4 * it + 4]


def test_weighted_mixing_follows_weights_not_sizes():
    sizes = [100, 10]
    p = mixing_probabilities(sizes, [1.0, 1.0])
    s = TrainingSampler(110, 1, seed=0, probs=p)
    counts = Counter(i < 100 for i, _ in _take(s, 4000))
    assert abs(counts[True] / 4000 - 0.5) < 0.05
    assert mixing_probabilities(sizes, []) is None
    with pytest.raises(ValueError, match="entries"):
        mixing_probabilities(sizes, [1.0])
    with pytest.raises(ValueError, match="positive"):
        mixing_probabilities(sizes, [0.0, 0.0])


def test_inference_sampler_shards_cover_everything_once():
    shards = [list(InferenceSampler(10, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))
    assert list(InferenceSampler(2, 2, 3)) == []


def test_train_loader_yields_batches_with_per_sample_seeds():
    records = [[{"k": i} for i in range(5)], [{"k": 100 + i} for i in range(3)]]

    def mapper(rec, rng):
        return rec["k"], {"r": float(rng.random())}

    loader = build_train_loader(records, mapper, batch_size=2, weights=[1.0, 3.0], seed=0)
    batches = list(islice(iter(loader), 3))
    assert all(len(b[0]) == 2 for b in batches)
    again = list(islice(iter(build_train_loader(records, mapper, batch_size=2, weights=[1.0, 3.0], seed=0, start_iter=1)), 2))
    assert [b[0] for b in again] == [b[0] for b in batches[1:]]
    assert [t["r"] for b in again for t in b[1]] == [t["r"] for b in batches[1:] for t in b[1]]
    assert np.isfinite([t["r"] for b in batches for t in b[1]]).all()

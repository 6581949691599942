"""Process-group queries and the few collectives MaskFace needs; all of them also work, as
no-ops or single-process answers, when ``torch.distributed`` is not initialised.

Starting the processes (``torchrun`` or spawning) is :func:`maskface.engine.launch.launch`'s job;
it records each process's local rank here with :func:`set_local_rank`.
"""

from __future__ import annotations

from typing import Any, List

import torch
import torch.distributed as dist

_LOCAL_RANK = 0


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_local_rank() -> int:
    """This process's index among the processes of its machine (0 when not distributed)."""
    return _LOCAL_RANK


def set_local_rank(local_rank: int) -> None:
    """Record this process's local rank (called by the launcher before the group is joined)."""
    global _LOCAL_RANK
    _LOCAL_RANK = local_rank


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes (no-op when not distributed)."""
    if is_dist() and get_world_size() > 1:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_gather_object(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` when not distributed)."""
    if get_world_size() == 1:
        return [obj]
    out: List[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def reduce_mean(values: dict) -> dict:
    """Average a dict of float scalars over all ranks (for logging)."""
    if get_world_size() == 1 or not values:
        return dict(values)
    keys = sorted(values)
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    t /= get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}

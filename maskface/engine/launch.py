"""Multi-process (multi-GPU / multi-node) launching.

Two ways to run distributed:

* ``torchrun --nproc-per-node 4 tools/train_net.py ...``: torchrun sets ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``; :func:`launch` notices and
  joins that group (``env://``) instead of spawning.
* ``tools/train_net.py --num-gpus 4 [--num-machines 2 --machine-rank R --dist-url tcp://host:port]``:
  :func:`launch` spawns one process per GPU on this machine. ``--dist-url auto`` (one machine
  only) picks a free local port.

Backend: NCCL on CUDA, gloo on CPU. On a machine without CUDA, ``--num-gpus N`` starts N CPU
processes with gloo -- slow, but it exercises the whole distributed path (used by the tests).

The process-group queries and collectives (:func:`get_rank`, :func:`all_gather_object`, ...)
live in :mod:`maskface.utils.comm`, below evaluation and the other layers that use them; they
are re-exported here for existing imports.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from typing import Any, Callable, Optional, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from maskface.utils.comm import (
    all_gather_object,
    get_local_rank,
    get_rank,
    get_world_size,
    is_dist,
    is_main_process,
    reduce_mean,
    set_local_rank,
    synchronize,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "all_gather_object",
    "default_device",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "is_dist",
    "is_main_process",
    "launch",
    "launched_by_torchrun",
    "reduce_mean",
    "synchronize",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


def default_device() -> torch.device:
    """This process's device: its local GPU when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", get_local_rank() if is_dist() else torch.cuda.current_device())
    return torch.device("cpu")


# --- launching -------------------------------------------------------------------------------------
def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _set_local_device(local_rank: int) -> None:
    set_local_rank(local_rank)
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"local rank {local_rank} but only {torch.cuda.device_count()} GPUs on this machine")
        torch.cuda.set_device(local_rank)


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def launch(
    main_func: Callable,
    num_gpus_per_machine: int = 1,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str = "auto",
    args: Tuple = (),
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
) -> Any:
    """Run ``main_func(*args)`` in every process of the job; returns its result in a single
    process run (spawned processes' results are not returned)."""
    if launched_by_torchrun():
        if int(os.environ["WORLD_SIZE"]) == 1:
            return main_func(*args)
        _set_local_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(_backend(), init_method="env://", timeout=timeout)
        try:
            return main_func(*args)
        finally:
            dist.destroy_process_group()

    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto only works on one machine; give tcp://HOST:PORT of machine 0")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// init URLs only work if every machine sees the same file")
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )
    return None


def _distributed_worker(
    local_rank: int,
    main_func: Callable,
    world_size: int,
    num_gpus_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: Tuple,
    timeout: Optional[datetime.timedelta],
) -> None:
    rank = machine_rank * num_gpus_per_machine + local_rank
    _set_local_device(local_rank)
    dist.init_process_group(_backend(), init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout)
    try:
        synchronize()
        main_func(*args)
    finally:
        dist.destroy_process_group()

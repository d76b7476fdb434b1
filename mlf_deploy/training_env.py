"""Where a training run executes: the torchrun rank and device, torch's thread count (fixed, see
:mod:`mlf_deploy.threads`) and the DataLoader workers (from the cores this process may use)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from mlf_deploy.data.streaming import TensorSplit
from mlf_deploy.errors import UserError
from mlf_deploy.threads import TRAIN_THREADS, use_threads


def env_int(name: str, default: int | None, lo: int = 0, hi: int = 1 << 20) -> int:
    """The integer environment variable ``name`` (torchrun's), or ``default`` when unset; anything
    else is one UserError naming it."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        if default is None:
            raise UserError(f"{name} is not set, but WORLD_SIZE is: start distributed runs with "
                            "torchrun, or unset WORLD_SIZE")
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise UserError(f"environment variable {name}={raw[:40]!r}: expected an integer in "
                        f"{lo}..{hi} (torchrun sets it)")
    return value


def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; joins the process group when torchrun started us."""
    world = env_int("WORLD_SIZE", 1, 1)
    if world == 1:
        return 0, 1, torch.device(device)
    rank, local = env_int("RANK", None, 0, world - 1), env_int("LOCAL_RANK", 0, 0, world - 1)
    if device == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return rank, world, torch.device(f"cuda:{local}" if device == "cuda" else "cpu")


def _cores() -> int:
    """CPU cores this process may run on (taskset and cgroup cpusets included)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cores_per_rank() -> int:
    """This process's share of the cores among the ranks torchrun started on this host."""
    return max(1, _cores() // env_int("LOCAL_WORLD_SIZE", 1, 1))


def choose_threads(threads: int | None = None) -> tuple[int, str]:
    """Set torch's intra-op thread count for training; ``(threads, source)``.

    ``threads``, else ``OMP_NUM_THREADS``, else the fixed :data:`mlf_deploy.threads.TRAIN_THREADS`:
    the count changes the weights, so it never follows the machine's load or core count
    (docs/determinism.md). DataLoader workers run one thread each (torch sets that).
    """
    return use_threads(threads, TRAIN_THREADS)


def choose_workers(dataset, workers: int | None = None) -> int:
    """DataLoader worker processes: none for an in-memory split, else ``workers`` or one per core
    of this rank (at most 4: decoding is the only work they do, and the frame cache makes later
    epochs I/O)."""
    if isinstance(dataset, TensorSplit):
        return 0
    if workers is not None:
        return workers
    return max(1, min(4, _cores_per_rank()))

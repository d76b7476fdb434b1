"""torch's intra-op thread count: an explicit, fixed choice per command, never read from the load.

The thread count is part of a run's arithmetic: torch's CPU kernels split their float reductions
(batch-norm statistics, weight gradients) into one partial sum per thread, so 1 and 2 threads
round differently and training drifts apart (docs/determinism.md has the measurement). A count
picked from the load average would make the same command give different weights on a busy and on
an idle machine. So every command takes ``--threads``; without it ``OMP_NUM_THREADS`` (an explicit
choice of the user's shell), else a fixed default of one thread for every command. One thread is
what keeps OpenMP from stalling on a loaded machine (a thread sharing a busy core holds every
other one at each parallel region: a digits training step took 20.65x as long with 2 threads as
with 1 at load average 21-24 on a 2-core machine, docs/datasets.md), it is the count behind the
README's figures, and the integer reference, whose numbers are the verdicts, is exact whatever
the count. On an idle many-core machine pass ``--threads N`` for speed; the run records N.
"""

from __future__ import annotations

import os

import torch

from mlf_deploy.errors import UserError, option

TRAIN_THREADS = 1  # train, finetune, demo: the count behind the README's figures
RUN_THREADS = 1    # verify, energy, evaluate, run: throughput without oversubscription


def choose(threads: int | None, default: int) -> tuple[int, str]:
    """``(threads, where the number came from)``: ``threads``, else ``OMP_NUM_THREADS``, else
    ``default``. Never the machine's load."""
    if threads is not None:
        source = "threads"
    elif os.environ.get("OMP_NUM_THREADS", "").strip():
        text = os.environ["OMP_NUM_THREADS"].strip()
        if not text.isdigit() or int(text) < 1:
            raise UserError(f"OMP_NUM_THREADS={text[:20]!r} is not a positive whole number; "
                            f"unset it or pass {option('threads', 'N')}")
        threads, source = int(text), "OMP_NUM_THREADS"
    else:
        threads, source = default, "default"
    if threads < 1:
        raise UserError(f"threads must be a positive integer, got {threads}")
    return threads, source


def use_threads(threads: int | None = None, default: int = RUN_THREADS) -> tuple[int, str]:
    """Set torch's intra-op threads (see :func:`choose`) and return ``(threads, source)``."""
    threads, source = choose(threads, default)
    torch.set_num_threads(threads)
    return threads, source


def describe(threads: int, source: str, name: str = "the threads option") -> str:
    """The line a command prints, so the count behind its numbers is on record; ``name``: what
    the caller calls the ``threads`` option (a command: its flag)."""
    why = {"threads": f"from {name}", "OMP_NUM_THREADS": "from OMP_NUM_THREADS",
           "default": f"the fixed default; change with {name}"}[source]
    return f"{threads} torch thread(s) ({why})"

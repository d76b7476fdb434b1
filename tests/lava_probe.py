"""Telling the processes of a Lava run apart by what they are, not by their position in a list."""

from mlf_deploy.runtimes.lava_guard import group_pids


def maps_record_file(pid: int) -> bool:
    """Whether ``pid`` is a Lava LIF process of a run: only those map their ``.rec`` record file
    while the network runs (the worker writes it before and reads it after; helpers never)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return any(line.rstrip().endswith(".rec") for line in f)
    except OSError:
        return False


def running_lifs(pgid: int) -> list[int]:
    """The LIF processes of the worker group ``pgid`` that are running the network."""
    return [p for p in sorted(group_pids(pgid)) if maps_record_file(p)]

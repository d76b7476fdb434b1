"""The Loihi 1 architecture file of one SANA-FE run: SANA-FE's own ``examples/loihi.yaml``
(its per-event energy and latency untouched), written tile by tile with the replaying input units
each core needs."""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path

from mlf_deploy.hardware.loihi1 import LOIHI1_SANAFE


def arch_file(sanafe, tiles: int, units: dict, folder: str):
    """SANA-FE's own ``loihi.yaml`` with ``tiles`` tiles (Loihi's 4-high columns, so hops are
    unchanged; several chips become one wider mesh: an extrapolation) written out one by one, so
    that core ``i`` holds ``units[i] = (charging, free, bias)`` replaying input units: the first
    family charges loihi_lif's spike-out energy, the others (a copy of a neuron already charged
    in an earlier run; the bias of a reproducing run) charge nothing. Every unit is an object in
    SANA-FE, so a run's file holds only the units that run replays through."""
    text = (files("sanafe.examples") / "loihi.yaml").read_text()
    head, rest = text.split("  tile:\n", 1)
    tile_part, core_part = rest.split("      core:\n", 1)
    height = LOIHI1_SANAFE.mesh_height
    head = head.replace("width: 8", f"width: {math.ceil(tiles / height)}")
    out = [head, "  tile:\n"]
    for t in range(math.ceil(tiles / height) * height):
        out += [tile_part.replace("loihi_tile[0..31]", f"loihi_tile_{t}"), "      core:\n"]
        for j in range(LOIHI1_SANAFE.cores_per_tile):
            core = core_part.replace("loihi_core[0..3]", f"loihi_core_{j}")
            core = core.replace("max_neurons_supported: 1024", "max_neurons_supported: 4096")
            extra = "".join(_units(name, n, out_pj) for name, n, out_pj in zip(
                ("mlf_replay", "mlf_relay", "mlf_bias"), units.get(t * 4 + j, (0, 0, 0)),
                (LOIHI1_SANAFE.spike_out_pj, 0.0, 0.0)))
            out.append(core.replace("          soma:\n", "          soma:\n" + extra, 1))
    path = Path(folder) / "loihi_mlf.yaml"
    path.write_text("".join(out))
    return sanafe.load_arch(str(path))


def _units(name: str, count: int, spike_out_pj: float) -> str:
    if not count:
        return ""
    zero = ("energy_access_neuron", "latency_access_neuron", "energy_update_neuron",
            "latency_update_neuron")
    lat = LOIHI1_SANAFE.spike_out_ns if spike_out_pj else 0.0
    return (f"            - name: {name}[0..{count - 1}]\n              attributes:\n"
            f"                model: input\n                energy_spike_out: {spike_out_pj}e-12\n"
            f"                latency_spike_out: {lat}e-9\n"
            + "".join(f"                {m}: 0.0\n" for m in zero))


def unit_counts(graph, cores, plan, charged, bias_cores=()) -> dict:
    """Core -> replaying units ``[charging, free, bias]`` a run's plan needs."""
    units = {c: [0, 0, 1] for c in bias_cores}
    for name, positions in plan["replays"].items():
        where = cores[graph.nodes[name].layer].ravel()
        for pos in positions:
            units.setdefault(int(where[pos]), [0, 0, 0])[(name, pos) in charged] += 1
    return units

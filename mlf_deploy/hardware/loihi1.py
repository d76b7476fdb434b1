"""Loihi 1 as SANA-FE models it: per-event energy and latency, the mesh, and a :class:`Target`
whose per-core limits make our mapping place neurons as that chip would hold them.

Every figure is SANA-FE 2.2.9's ``examples/loihi.yaml`` (docs/energy.md, "Loihi 1 per-event
bill"), which takes them from the SPICE figures of Davies et al., IEEE Micro 2018 [C2]; SANA-FE
(Boyle et al., TCAD 2025, doi 10.1109/TCAD.2025.3537971) reports energy within ~12 % and latency
within ~25 % of measured Loihi 1. They are **Loihi 1** numbers: nothing public prices a Loihi 2
event or a graded (multi-bit) payload.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mlf_deploy.hardware.target import LOIHI1_FAN_IN_AXONS, LOIHI1_FAN_OUT_AXONS, Target

PJ = 1e-12
NS = 1e-9


@dataclass(frozen=True)
class ChipCosts:
    """Energy (pJ) and latency (ns) per event of one chip model (defaults: SANA-FE's Loihi 1)."""

    name: str = "loihi1-sanafe"
    synapse_conv_pj: float = 24.0  # one synaptic event of a conv-encoded synapse
    synapse_dense_pj: float = 35.5  # one synaptic event of a dense synapse
    dendrite_pj: float = 0.0  # accumulator update (Loihi's figure folds it into the synapse)
    soma_access_pj: float = 51.2  # every neuron, every step
    soma_update_pj: float = 21.6  # a neuron with input, a non-zero bias or a non-zero membrane
    spike_out_pj: float = 69.3  # a neuron that fires
    message_out_pj: float = 111.0  # one spike message, per destination core
    message_in_pj: float = 0.0
    hop_east_west_pj: float = 3.0
    hop_north_south_pj: float = 4.2
    synapse_conv_ns: float = 3.1
    synapse_dense_ns: float = 3.8
    soma_access_ns: float = 6.0
    soma_update_ns: float = 3.7
    spike_out_ns: float = 30.0
    message_out_ns: float = 5.1
    message_in_ns: float = 16.0
    hop_east_west_ns: float = 4.1
    hop_north_south_ns: float = 6.5
    # barrier sync per step, by the number of tiles in use (the largest key not above it)
    sync_ns: tuple = ((1, 600.0), (2, 1000.0), (4, 1400.0), (29, 1800.0))
    mesh_height: int = 4  # tiles per mesh column; tile i sits at (i // height, i % height)
    mesh_width: int = 8
    cores_per_tile: int = 4

    def synapse_pj(self, kind: str) -> float:
        return self.synapse_conv_pj if kind == "conv2d" else self.synapse_dense_pj

    def synapse_ns(self, kind: str) -> float:
        return self.synapse_conv_ns if kind == "conv2d" else self.synapse_dense_ns

    def sync(self, tiles: int) -> float:
        """Barrier latency (ns) of one step with ``tiles`` tiles in use."""
        return max(ns for n, ns in self.sync_ns if n <= max(tiles, 1))

    def tile_xy(self, core):
        """Mesh coordinates of a core's tile (ints or numpy arrays)."""
        tile = core // self.cores_per_tile
        return tile // self.mesh_height, tile % self.mesh_height

    def hops(self, src_core, dst_core):
        """(east-west, north-south) links a message crosses (dimension-order routing)."""
        (x0, y0), (x1, y1) = self.tile_xy(src_core), self.tile_xy(dst_core)
        return abs(x1 - x0), abs(y1 - y0)

    def to_dict(self) -> dict:
        return asdict(self)


LOIHI1_SANAFE = ChipCosts()

# [C2] and loihi.yaml: 1,024 neurons (compartments) per core, 128 cores on a chip of 32 tiles.
LOIHI1_NEURONS_PER_CORE = 1024
LOIHI1_CORES = 128
LOIHI1_SYNAPTIC_MEMORY_BYTES = 128 * 1024  # [C2]: 128 KB of synaptic memory per core

LOIHI1 = Target(name="loihi1", cores_per_chip=LOIHI1_CORES,
                neurons_per_core=LOIHI1_NEURONS_PER_CORE,
                synaptic_memory_bytes=LOIHI1_SYNAPTIC_MEMORY_BYTES,
                fan_in_axons=LOIHI1_FAN_IN_AXONS, fan_out_axons=LOIHI1_FAN_OUT_AXONS)
"""Loihi 1 per-core limits; every expanded synapse stored (as Loihi 1 stores a conv)."""

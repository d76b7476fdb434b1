"""A Loihi-2-like target: its limits as named parameters, each with where it comes from.

Sources (docs/references.md §3 and §6): [C2] Davies et al., IEEE Micro 2018 (Loihi 1);
[C3] Intel Loihi 2 brief; [LV1]/[LV2] Lava ``bit_accurate_loihi`` LIF and Dense/DelaySparse models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mlf_deploy.ir.semantics import LOIHI_WEIGHT_BITS, MAX_DELAY, STATE_BITS

# [C3] Loihi 2: 128 neuromorphic cores and up to 1 M (2^20) neurons per chip.
LOIHI2_CORES = 128
LOIHI2_NEURONS_PER_CHIP = 2 ** 20
# derived, not published per core: 2^20 / 128 (docs/references.md §3)
LOIHI2_NEURONS_PER_CORE = LOIHI2_NEURONS_PER_CHIP // LOIHI2_CORES  # 8192
# 192 KB per the Loihi 2 brief; one secondary page says 128 KB (Loihi 1's figure [C2]); unverified
LOIHI2_SYNAPTIC_MEMORY_BYTES = 192 * 1024
# [C2] Loihi 1: 4096 fan-in axons and 4096 fan-out edges per core; no Loihi 2 figure is published
# in our sources, so Loihi 1's are used as the proxy limits
LOIHI1_FAN_IN_AXONS = 4096
LOIHI1_FAN_OUT_AXONS = 4096


@dataclass(frozen=True)
class Target:
    """Per-core and per-chip limits of a neuromorphic target (defaults: Loihi 2 as above).

    ``weight_sharing=False`` stores every expanded synapse (each target neuron its own copy of each
    weight, as Loihi 1 stores a conv, and each of the K level LIFs of the lowering as its own
    neuron): the worst case. ``True`` stores a core's unique conv weights once (Loihi 2's
    convolutional synapse encoding, as lava-dl NetX uses it).
    """

    name: str = "loihi2-like"
    cores_per_chip: int = LOIHI2_CORES
    neurons_per_core: int = LOIHI2_NEURONS_PER_CORE
    synaptic_memory_bytes: int = LOIHI2_SYNAPTIC_MEMORY_BYTES
    fan_in_axons: int = LOIHI1_FAN_IN_AXONS
    fan_out_axons: int = LOIHI1_FAN_OUT_AXONS
    weight_bits: int = LOIHI_WEIGHT_BITS
    state_bits: int = STATE_BITS
    max_delay: int = MAX_DELAY
    weight_sharing: bool = False
    chips: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


LOIHI2 = Target()

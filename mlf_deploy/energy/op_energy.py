"""Per-operation energy constants, each with its source, and the :class:`EnergyModel` that holds
them.

Sources (docs/references.md §4 and §6):

* [C1] M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm,
  as encoded in SpikingJelly ``op_counter/compute_energy.py`` (``fp32()``, ``int8()``) and the syops
  README: the SNN-paper default ``E = E_MAC * MACs(first layer) + E_AC * SynOps``.
* [C2] M. Davies et al., "Loihi: a neuromorphic manycore processor with on-chip learning",
  IEEE Micro 2018, Table 2 (pre-silicon SDF/SPICE, 0.75 V, 14 nm). These are **Loihi 1** figures:
  Intel publishes no per-SynOp or per-neuron-update energy for Loihi 2, so the preset below is a
  labelled proxy, never Loihi 2 data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# [C1] 45 nm FP32: multiply 3.7 pJ + add 0.9 pJ.
FP32_MULT_PJ = 3.7
FP32_ADD_PJ = 0.9
FP32_MAC_PJ = FP32_MULT_PJ + FP32_ADD_PJ  # 4.6
FP32_AC_PJ = FP32_ADD_PJ  # 0.9
# [C1] 45 nm INT8: multiply 0.2 pJ + add 0.03 pJ.
INT8_MULT_PJ = 0.2
INT8_ADD_PJ = 0.03
INT8_MAC_PJ = INT8_MULT_PJ + INT8_ADD_PJ  # 0.23
INT8_AC_PJ = INT8_ADD_PJ  # 0.03
# [C2] Loihi 1: energy per synaptic spike op (min), neuron update inactive / active.
LOIHI1_SYNOP_PJ = 23.6
LOIHI1_NEURON_INACTIVE_PJ = 52.0
LOIHI1_NEURON_ACTIVE_PJ = 81.0


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in picojoules.

    ``e_mac_pj`` prices the dense (analog-input) MACs and the ANN comparison; ``None`` means the
    target has no MAC unit (the input layer then runs on a host and is left out, and no ANN energy
    is given). ``e_ac_pj`` prices one synaptic operation (an accumulate per spike per target).
    ``e_neuron_pj`` / ``e_neuron_active_pj`` price one neuron update per timestep for a neuron that
    did not / did fire that step (each of the K level LIFs is one neuron); 0 leaves updates out, as
    the usual 45 nm formula does.
    """

    name: str
    e_mac_pj: float | None
    e_ac_pj: float
    e_neuron_pj: float = 0.0
    e_neuron_active_pj: float = 0.0
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    m.name: m for m in (
        EnergyModel("45nm-fp32", FP32_MAC_PJ, FP32_AC_PJ,
                    note="Horowitz ISSCC 2014, 45 nm FP32 (MAC 4.6 pJ, AC 0.9 pJ)"),
        EnergyModel("45nm-int8", INT8_MAC_PJ, INT8_AC_PJ,
                    note="Horowitz ISSCC 2014, 45 nm INT8 (MAC 0.23 pJ, AC 0.03 pJ)"),
        EnergyModel("loihi1-proxy", None, LOIHI1_SYNOP_PJ, LOIHI1_NEURON_INACTIVE_PJ,
                    LOIHI1_NEURON_ACTIVE_PJ,
                    note="Loihi 1 pre-silicon figures (Davies et al. 2018), a proxy, not Loihi 2; "
                         "input layer on the host, not counted"),
    )
}
"""The named energy models; pass your own :class:`EnergyModel` s to override or extend them."""

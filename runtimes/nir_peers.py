"""Run a NIR file in the peers' own importers (snnTorch, Norse) and record every population's
spikes.

Each loader returns a torch module built by the peer's NIR importer; :func:`run_peer` steps it over
the timesteps, reading each LIF module's spikes with a forward hook. The loaders:

* ``snntorch``: ``snntorch.import_nir.import_from_nir`` as shipped (float32: its node converter
  narrows arrays with ``torch.Tensor`` and nirtorch loads in float32).
* ``snntorch-f64``: the same node converter (``_nir_to_snntorch_module``) through
  ``nirtorch.nir_to_torch(dtype=float64)`` with float64 as torch's default dtype while it builds, so
  the file's float64 arrays arrive unchanged; snnTorch's spike function returns float32 0/1 tensors,
  which a forward pre-hook casts (exactly) to float64 before each weight layer.
* ``norse``: ``norse.torch.from_nir`` as shipped (the deprecated ``nirtorch.load`` executor).
* ``norse-nirtorch``: Norse's node converter through ``nirtorch.nir_to_torch`` (topological order).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from mlf_deploy.exporters.nir.importer import population_ids

LOADERS = ("snntorch", "snntorch-f64", "norse", "norse-nirtorch")


def load_peer(g, loader: str):
    """The peer's torch module for the ``nir.NIRGraph`` ``g``."""
    import nir
    import nirtorch
    if loader == "snntorch":
        from snntorch.import_nir import import_from_nir
        return import_from_nir(g)
    if loader == "snntorch-f64":
        import snntorch.import_nir as sin
        convert = functools.partial(sin._nir_to_snntorch_module, init_hidden=True)
        mapping = {t: convert for t in (nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.IF,
                                        nir.LIF, nir.CubaLIF, nir.AvgPool2d)}
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            net = nirtorch.nir_to_torch(sin._replace_rnn_subgraph_with_nirgraph(g), mapping,
                                        dtype=torch.float64)
        finally:
            torch.set_default_dtype(previous)
        for mod in net.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                mod.register_forward_pre_hook(lambda m, a: tuple(t.to(m.weight.dtype) for t in a))
        return net
    if loader == "norse":
        from norse.torch import from_nir
        return from_nir(g)
    if loader == "norse-nirtorch":
        from norse.torch.utils.import_nir import _import_norse_module
        mapping = {t: _import_norse_module for t in (nir.Affine, nir.Conv2d, nir.Flatten,
                                                     nir.Linear, nir.IF, nir.LIF, nir.SumPool2d)}
        return nirtorch.nir_to_torch(g, mapping)
    raise ValueError(f"unknown peer loader {loader!r}; choose one of {', '.join(LOADERS)}")


def _neuron_modules(net, ids: dict) -> dict:
    """Population name -> the module the importer built for that NIR neuron node."""
    by_name = dict(net.named_modules())
    out = {}
    for nid, pop in ids.items():
        mod = by_name.get(nid)
        if mod is None:  # nirtorch.load nests modules; match on the last name component
            mod = next((m for n, m in by_name.items() if n.split(".")[-1] == nid), None)
        if mod is None:
            raise RuntimeError(f"the peer built no module for NIR node {nid!r}")
        out[pop] = mod
    return out


@torch.no_grad()
def run_peer(g, loader: str, frames: np.ndarray, batch_size: int = 128) -> tuple[dict, np.ndarray]:
    """Spikes ``{population: (T, B, C, H, W) uint8}`` and logits ``(B, classes)`` (the Output summed
    over time) of ``g`` run by ``loader`` on ``frames`` ``(T, B, C, H, W)`` (prepared input)."""
    net = load_peer(g, loader)
    mods = _neuron_modules(net, population_ids(g))
    dtype = torch.float64 if loader == "snntorch-f64" else torch.float32
    spikes = {p: [] for p in mods}
    logits = []
    for start in range(0, frames.shape[1], batch_size):
        x = torch.from_numpy(np.ascontiguousarray(frames[:, start:start + batch_size])).to(dtype)
        record: dict = {p: [] for p in mods}
        hooks = [m.register_forward_hook(functools.partial(_keep, record[p]))
                 for p, m in mods.items()]
        _reset(net)
        state, total = None, 0.0
        for t in range(x.shape[0]):
            out, state = net(x[t], state) if state is not None else net(x[t])
            step_out = out[0] if isinstance(out, tuple) else out
            total = total + step_out.reshape(x.shape[1], -1).double()
        for h in hooks:
            h.remove()
        for p in mods:
            spikes[p].append(torch.stack(record[p]).to(torch.uint8).numpy())
        logits.append(total.numpy())
    return ({p: np.concatenate(v, axis=1) for p, v in spikes.items()}, np.concatenate(logits))


def _keep(store: list, module, args, output):
    store.append((output[0] if isinstance(output, tuple) else output).detach())


def _reset(net) -> None:
    """Zero the hidden state of snnTorch neurons (Norse's state travels through the call)."""
    for m in net.modules():
        if hasattr(m, "reset_mem") and hasattr(m, "mem"):
            m.reset_mem()

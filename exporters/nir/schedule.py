"""The order of an imported NIR graph's nodes: each layer after every layer it reads."""

from __future__ import annotations

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Input, Layer, Projection, Readout


def schedule(nodes: dict) -> list[str]:
    """Layers in dependency order, each as projections, layer, populations; readout last."""
    layers = [n for n in nodes.values() if isinstance(n, Layer)]
    placed = {n for n, v in nodes.items() if isinstance(v, Input)}
    order = list(placed)
    while layers:
        ready = [lay for lay in layers
                 if all(p.source in placed for p in nodes.values()
                        if isinstance(p, Projection) and p.target == lay.name)]
        if not ready:
            raise UserError(f"the NIR graph has a cycle through {layers[0].name!r}; recurrent "
                            "connections are not expressible")
        for lay in ready:
            order += [p.name for p in nodes.values()
                      if isinstance(p, Projection) and p.target == lay.name]
            order += [lay.name, *lay.populations]
            placed.update(lay.populations)
            layers.remove(lay)
    return order + [n for n, v in nodes.items() if isinstance(v, Readout)]

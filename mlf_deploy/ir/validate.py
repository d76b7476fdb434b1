"""The schema of a graph file, checked before a node is built or an array allocated.

The file's SHA-256 only shows that bytes did not change by accident; anyone can edit a graph and
reseal it. So every value is checked here against what the node types mean: types, finite numbers,
integers within the fixed-point widths the int graph declares, array shapes consistent across
nodes (a projection's weight against its source and target, a readout's against its sources),
and sizes within :mod:`mlf_deploy.limits`. Each failure names the node and field.
"""

from __future__ import annotations

import math

from mlf_deploy import limits
from mlf_deploy.ir.field_checks import FieldChecks
from mlf_deploy.ir.file_checks import check_metadata, check_wiring
from mlf_deploy.ir.semantics import STATE_BITS, conv_output_size

SENDERS = ("Population", "GradedPopulation")  # the node types that send spikes


class Schema(FieldChecks):
    """Checks one graph dict (``graph.json``'s ``graph``) and its arrays; raises ValueError."""

    def __init__(self, body, arrays: dict):
        # The widths an int graph declares are the quantization rules' (imported here: the
        # quantization package imports the IR package this module belongs to).
        from mlf_deploy.quantization import rules
        self.rules = rules
        super().__init__(arrays)
        if not isinstance(body, dict):
            raise ValueError("the graph is not a JSON object")
        self.numeric = body.get("numeric")
        if self.numeric not in ("float", "int"):
            raise ValueError(f"numeric is {self.numeric!r}, expected 'float' or 'int'")
        self.int = self.numeric == "int"
        if not isinstance(body.get("metadata"), dict):
            raise ValueError("metadata is not a JSON object")
        nodes = body.get("nodes")
        if not isinstance(nodes, list) or not 3 <= len(nodes) <= limits.MAX_GRAPH_NODES:
            raise ValueError(f"nodes must be a list of 3..{limits.MAX_GRAPH_NODES} nodes")
        self.nodes, self.body = {}, body

    # -- node types: fields and their meaning ------------------------------------------------
    def Input(self, n):  # noqa: N802 - named after the node type it checks
        self.shape(n)
        if n.get("encoding") not in ("static", "events"):
            self.fail(n, "encoding", "'static' or 'events'", n.get("encoding"))
        self.integer(n, "timesteps", 1, limits.MAX_TIMESTEPS)
        self.number(n, "scale", 1e-30, 1e30)
        self.integer(n, "value_bits", 2 if self.int else 0, STATE_BITS if self.int else 0)
        c = n["shape"][0]
        mean = self.numbers(n, "raw_mean", (0, c))
        self.numbers(n, "raw_std", (len(mean),), lo=1e-30)  # a std of 0 would divide by zero
        self.number(n, "raw_divide", 1e-30 if mean else 1.0, 1e30 if mean else 1.0)
        gain = self.numbers(n, "gain", (0, c))
        self.numbers(n, "offset", (len(gain),))

    def Layer(self, n):  # noqa: N802
        c = self.shape(n)[0]
        bias_bits = (self.rules.BIAS_MANT_MAX + 1).bit_length()  # signed: sign + 12 bits
        self.array(n, "bias", (c,), bits=bias_bits if self.int else 0)
        pops = n.get("populations")
        if not isinstance(pops, list) or not 1 <= len(pops) <= limits.MAX_LEVELS \
                or not all(isinstance(p, str) for p in pops):
            self.fail(n, "populations", f"a list of 1..{limits.MAX_LEVELS} names", pops)
        lo, hi = self.rules.WEIGHT_EXP_RANGE if self.int else (0, 0)
        self.integer(n, "weight_exp", lo, hi)
        self.integer(n, "bias_exp", 0, self.rules.BIAS_EXP_MAX if self.int else 0)
        self.number(n, "scale", 1e-30, 1e30)

    def Population(self, n):  # noqa: N802
        self.name(n, "layer")
        self.integer(n, "level", 0, limits.MAX_LEVELS - 1)
        self.shape(n)
        hi = self.rules.THRESHOLD_MANT_MAX if self.int else 1e30
        self.number(n, "v_threshold", 1 if self.int else 1e-30, hi, whole=self.int)
        self.number(n, "v_retention", 0.0, 1.0)
        self.number(n, "v_reset", 0.0, 0.0)  # every backend resets to 0 (the node's rule)

    def GradedPopulation(self, n):  # noqa: N802
        self.name(n, "layer")
        self.shape(n)
        hi = self.rules.THRESHOLD_MANT_MAX if self.int else 1e30
        self.numbers(n, "v_thresholds", range(1, limits.MAX_LEVELS + 1),
                     1 if self.int else 1e-30, hi, whole=self.int)
        self.number(n, "v_retention", 0.0, 1.0)
        self.number(n, "v_reset", 0.0, 0.0)  # every backend resets to 0

    def Projection(self, n):  # noqa: N802
        src, dst = self.nodes.get(self.name(n, "source")), self.nodes.get(self.name(n, "target"))
        if src is None or src["type"] not in ("Input", "Population", "GradedPopulation"):
            self.fail(n, "source", "an earlier Input or Population", n.get("source"))
        if dst is None or dst["type"] != "Layer":
            self.fail(n, "target", "a Layer", n.get("target"))
        bits = self.integer(n, "weight_bits", 2 if self.int else 0, 16 if self.int else 0)
        (ci, hi, wi), (co, ho, wo) = src["shape"], dst["shape"]
        if n.get("kind") == "dense":
            self.array(n, "weight", (co * ho * wo, ci * hi * wi), bits)
        elif n.get("kind") == "conv2d":
            stride = self.ints(n, "stride", 2, 1, limits.MAX_KERNEL)
            pad = self.ints(n, "padding", 2, 0, limits.MAX_KERNEL)
            w = self.peek(n, "weight")
            k = tuple(w.shape[2:]) if w is not None and w.ndim == 4 else (0, 0)
            if not all(1 <= d <= limits.MAX_KERNEL for d in k):
                self.fail(n, "weight",
                          f"a (C_out, C_in, kh, kw) kernel, sides 1..{limits.MAX_KERNEL}",
                          None if w is None else f"shape {w.shape}")
            self.array(n, "weight", (co, ci, *k), bits)
            out = tuple(conv_output_size(d, kd, s, p)
                        for d, kd, s, p in zip((hi, wi), k, stride, pad, strict=True))
            if out != (ho, wo):
                self.fail(n, "stride", f"a convolution of {hi}x{wi} onto the target's {ho}x{wo}",
                          f"{out[0]}x{out[1]} from stride {stride}, padding {pad}, kernel {k}")
        else:
            self.fail(n, "kind", "'conv2d' or 'dense'", n.get("kind"))

    def Readout(self, n):  # noqa: N802
        srcs = n.get("sources")
        if not isinstance(srcs, list) or not srcs or not all(
                isinstance(s, str) and self.nodes.get(s, {}).get("type") in SENDERS
                for s in srcs):
            self.fail(n, "sources", "a list of earlier Population names", srcs)
        shapes = {tuple(self.nodes[s]["shape"]) for s in srcs}
        if len(shapes) != 1:
            self.fail(n, "sources", "populations of one shape", sorted(shapes))
        c = shapes.pop()[0]
        bits = self.integer(n, "weight_bits", 2 if self.int else 0, 16 if self.int else 0)
        w = self.peek(n, "weight")
        classes = w.shape[0] if w is not None and w.ndim == 2 else 0
        if not 1 <= classes <= limits.MAX_DIM:
            self.fail(n, "weight", "a (classes, C) matrix",
                      None if w is None else f"shape {w.shape}")
        self.array(n, "weight", (classes, c), bits)
        self.array(n, "bias", (classes,))
        self.number(n, "scale", 1e-30, 1e30)

    def run(self) -> None:
        from mlf_deploy.ir.nodes import NODE_TYPES
        for n in self.body["nodes"]:
            if not isinstance(n, dict) or not isinstance(n.get("type"), str) \
                    or n["type"] not in NODE_TYPES:
                raise ValueError(f"node {str(n)[:60]!r}: expected an object with a type of "
                                 f"{', '.join(NODE_TYPES)}")
            name = self.name(n, "name")
            if name in self.nodes:
                self.fail(n, "name", "a name used once", name)
            extra = sorted(set(n) - set(NODE_TYPES[n["type"]].__dataclass_fields__) - {"type"})
            if extra:
                self.fail(n, extra[0], "no such field", n[extra[0]])
            self.nodes[name] = n
        # Sources before what reads them: a projection's weight is checked against shapes
        # already known to be valid.
        for kind in ("Input", "Layer", "Population", "GradedPopulation", "Projection", "Readout"):
            for n in self.nodes.values():
                if n["type"] == kind:
                    getattr(self, kind)(n)
        neurons = sum(math.prod(n["shape"]) * len(n.get("v_thresholds", [0]))
                      for n in self.nodes.values() if n["type"] in SENDERS)
        weights = sum(self.arrays[k].size for k in self.used)
        if neurons > limits.MAX_NEURONS or weights > limits.MAX_WEIGHTS:
            raise ValueError(f"{neurons} neurons and {weights} weights exceed this tool's limits "
                             f"({limits.MAX_NEURONS} and {limits.MAX_WEIGHTS})")
        for name, n in self.nodes.items():
            self.cross_check(name, n)
        check_wiring(self.nodes, self.fail)
        unused = sorted(set(self.arrays) - self.used)
        if unused:
            raise ValueError(f"array {unused[0]!r} belongs to no node")
        check_metadata(self.body["metadata"], self.nodes)

    def cross_check(self, name, n):
        first = self.nodes.get(n["populations"][0], {}) if n["type"] == "Layer" else {}
        if first.get("type") == "GradedPopulation":  # the graded form: one sender per layer
            if len(n["populations"]) != 1 or first["layer"] != name or first["shape"] != n["shape"]:
                self.fail(n, "populations", "one graded population of this layer, same shape",
                          n["populations"])
            return
        if n["type"] == "Layer":
            for level, p in enumerate(n["populations"]):
                pop = self.nodes.get(p)
                if pop is None or pop["type"] != "Population" or pop["layer"] != name \
                        or pop["level"] != level or pop["shape"] != n["shape"]:
                    self.fail(n, "populations", f"population {p!r} of this layer, level {level}, "
                              "same shape", p)
        if n["type"] == "Population" and name not in self.nodes.get(n["layer"], {}).get(
                "populations", ()):
            self.fail(n, "layer", "a Layer that lists this population", n["layer"])


def validate_graph_dict(body, arrays: dict) -> None:
    """Raise ValueError naming the node and field of the first value the graph cannot hold."""
    Schema(body, arrays).run()

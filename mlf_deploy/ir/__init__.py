"""The deployment graph (IR): nodes, the graph, and its portable file format."""

from mlf_deploy.ir.graph import Graph
from mlf_deploy.ir.graph_reader import load_graph
from mlf_deploy.ir.nodes import (
           NODE_TYPES,
           GradedPopulation,
           Input,
           Layer,
           Population,
           Projection,
           Readout,
)
from mlf_deploy.ir.serialize import graph_checksum, save_graph

__all__ = ["Graph", "Input", "Layer", "Population", "GradedPopulation", "Projection", "Readout",
           "NODE_TYPES",
           "graph_checksum", "load_graph", "save_graph"]

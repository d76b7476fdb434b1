"""Backends: running an artifact or a graph (ONNX Runtime, Lava, torch, NIR peers, SANA-FE) and
returning its recorded states. Imports exporters and the core, never verification or use cases."""

"""Verification: the table of backends and their tolerances, state comparison, tallies, the
accuracy agreement statistics, the per-layer check and the verdict text. Imports runtimes,
exporters and the core; the use cases (:mod:`mlf_deploy.workflows`) drive it."""

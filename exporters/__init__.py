"""Formats: the graph turned into artifacts (and, for NIR, read back), one folder per format.
Imports only the core."""

"""The Lava artifact: :mod:`.export` writes a folder that runs on its own with numpy and lava-nc.
The builder, the process models and the loader live here because they are the artifact's code:
the exported folder holds byte copies of the shipped modules (``export.SHIPPED``)."""

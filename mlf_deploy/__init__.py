"""mlf-deploy: Multi-Level-Firing spiking DS-ResNets, lowered to an integer deployment graph.

In a checkout, ``exporters/``, ``runtimes/`` and ``commands/`` sit beside this folder and install as
``mlf_deploy.exporters``, ``.runtimes`` and ``.commands``; ``make venv`` installs them editable in
strict mode, a tree of links (``build/__editable__.*``) that static tools read like any package.
When this folder is found first (the checkout's root on the import path), the package also looks in
that tree, so those names import either way."""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

"""The ``vigil`` command and its subcommands: the top layer, above the drivers it starts.

Nothing below imports from here; each subcommand reads its settings, builds what it needs
from the composition (``vigil``), the drivers (``streams``, ``api``) and the infrastructure
(``sinks``, ``audit``), and turns every error a user can cause into one line and an exit status.
"""

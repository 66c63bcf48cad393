"""The applications built on crossent: the ``crossent`` command and its subcommands.

``cli`` is the typer app; ``tour``, ``report``, ``train`` and ``explore`` each add one
subcommand with ``register(app)``. The library never imports this package, and the
applications use only crossent's public names, so they can move or go without touching it.
"""

"""``python -m cli`` runs the ``vigil`` command (the tests and benchmarks start it so)."""

from cli.main import main

main(prog_name="vigil")

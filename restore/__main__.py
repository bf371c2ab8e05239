"""``python -m restore``: the ``restore`` command."""
from .cli import run

run()

"""``python -m restore``: the ``restore`` command."""
from .cli import command_line

command_line()

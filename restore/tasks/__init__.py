"""The restoration tasks. Each module holds one task (its class and its Python function);
:data:`TASKS` lists them in the order the command line, the benchmark and training use.

Adding a task is one module here and one line below (and, to benchmark or train on it, an entry in
:data:`restore.conditions.BENCHMARKS` or :data:`restore.views.TRAINING_VIEWS`).
"""
from __future__ import annotations

from .base import CLEAN_SIGMA, OptionError, Task
from .deblur import Deblur
from .dejpeg import Dejpeg
from .denoise import Denoise
from .inpaint import Inpaint
from .superres import Superres

TASKS: dict[str, type[Task]] = {task.name: task for task in (Denoise, Superres, Inpaint, Deblur, Dejpeg)}

__all__ = ["CLEAN_SIGMA", "OptionError", "TASKS", "Task", "Deblur", "Dejpeg", "Denoise", "Inpaint", "Superres"]

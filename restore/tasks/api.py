"""The Python functions of the tasks (``restore.denoise``, ...), generated from each task's option
fields and defaults, so that a function's signature and docstring never drift from its task."""
from __future__ import annotations

import inspect
import numbers
import typing
from dataclasses import MISSING

from .base import OptionError, Task, option_fields

IMAGE = """The damaged image: ``(H, W)`` or with 1 or 3 channels on ``channel_axis``, at least one
    pixel; uint8 (0..255), uint16 (0..65535) or finite floats in [0, 1]. Anything else raises a
    ``ValueError`` that says what to do: floats outside [-0.01, 1.01] (divide 8-bit values by
    255, 16-bit ones by 65535), NaN or infinite values, another dtype (int32, bool, ...), an
    empty array."""

#: The settings every task's function takes: (name, default, type, description).
SHARED = [
    ("prior", "photo", "str or VAE", "``\"photo\"``, ``\"photo-large\"``, ``\"digits\"``, a checkpoint path or a loaded model."),
    ("steps", None, "int, optional", "Solver steps per tile (default {steps}{zero})."),
    ("mode", "joint", "{\"joint\", \"latent\"}", "Joint MAP over image and code, or over the code alone."),
    ("device", "cpu", "str or torch.device", "``\"cpu\"``, ``\"cuda\"``, ``\"cuda:N\"`` or ``\"auto\"`` (a GPU if "
     "there is one, else the CPU); a GPU this machine "
     "lacks raises :class:`~restore.devices.DeviceError` (a ``ValueError``) before anything is loaded."),
    ("tile", None, "int, optional", "Tile size in output pixels (default the prior's)."),
    ("precision", "auto", "{\"auto\", \"fp32\", \"bf16\"}", "The networks' arithmetic; ``auto`` is bf16 where "
     "the hardware has units for it (a CUDA GPU, a CPU with AMX or AVX512-BF16), else fp32."),
    ("channel_axis", -1, "int", "The colour axis of a 3-D image."),
    ("progress", None, "callable or Progress, optional", "``progress(done, total)``: the current stage's work, "
     "from 0 again at each (the prior's solver steps; each pass of the data's filter in bands of rows); an "
     "object with ``step(done, total)`` and ``stage(name, unit)`` (restore.batch.Progress) also hears each "
     "stage's name first."),
    ("ensemble", None, "int, optional", "The mean of the restorations of the image turned and flipped this many "
     "ways (1, 2, 4 or 8; default 1): better, and that many times the work."),
    ("quick", False, "bool", "Denoising's last filter of the data in windows alone, once: about five times "
     "faster on large photographs, 0.5-1.3 dB lower (dejpeg, and the JPEG stage of a JPEG's deblur and superres: "
     "its own last filter left out; otherwise no change)."),
    ("samples", 1, "int", "1: the solver's estimate. More: the mean of that many posterior samples around it."),
    ("seed", 0, "int", "The samples' random numbers: the same seed gives the same output."),
    ("return_std", False, "bool", "Also return the samples' standard deviation per pixel, ``(H, W)`` in "
     "[0, 1] units: where the restoration is unsure (needs ``samples`` >= 2)."),
]


def _api_name(f) -> str:
    """A field's keyword: its first long command-line flag (``mask_dilate`` is ``--mask-dilate``), else its name."""
    long = [flag for flag in f.metadata["flags"] if flag.startswith("--")]
    return long[0][2:].replace("-", "_") if long else f.name


def _option_value(f, name: str, kind, value):
    """A task option as the function was given it: text parsed as the command line parses it
    (``sigma="auto"``, ``sigma="25"``), other values checked against the option's type, so that a
    wrong one is refused by name rather than deep inside the task."""
    allowed = set(typing.get_args(kind)) or {kind}
    if isinstance(value, str) and f.metadata["parse"] is not None:
        return f.metadata["parse"](value)
    if value is None and type(None) in allowed:
        return value
    if allowed == {str} and not isinstance(value, str):
        raise OptionError(name, f"must be text, got {value!r}")
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if int in allowed and not (number and float(value).is_integer()):
        raise OptionError(name, f"must be a whole number, got {value!r}")
    if float in allowed and not number:
        raise OptionError(name, f"must be a number, got {value!r}")
    return int(value) if int in allowed else float(value) if float in allowed else value


def api_function(task_type: type[Task], description: str, *, companion_doc: str = ""):
    """The function ``name(image[, companion], *, <options>, <settings>)`` of ``task_type``."""
    options = option_fields(task_type)
    kinds = typing.get_type_hints(task_type)
    companion = task_type.companion
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("image", positional)]
    if companion is not None:
        params.append(inspect.Parameter(companion.name, positional))
    for f in options:
        default = inspect.Parameter.empty if f.default is MISSING or f.metadata["required"] else f.default
        params.append(inspect.Parameter(_api_name(f), keyword, default=default))
    params += [inspect.Parameter(name, keyword, default=default) for name, default, _, _ in SHARED]
    signature = inspect.Signature(params)

    def function(*args, **kwargs):
        from ..pipeline import SolverSettings, restore
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        v = given.arguments
        task = task_type.from_options(**{f.name: _option_value(f, _api_name(f), kinds[f.name], v[_api_name(f)])
                                         for f in options})
        settings = SolverSettings(prior=v["prior"], steps=v["steps"], mode=v["mode"], device=v["device"],
                                  tile=v["tile"], precision=v["precision"], samples=v["samples"], seed=v["seed"],
                                  ensemble=v["ensemble"], quick=v["quick"])
        return restore(v["image"], task, companion=v[companion.name] if companion else None,
                       channel_axis=v["channel_axis"], progress=v["progress"], settings=settings,
                       return_std=v["return_std"])

    lines = [description, "", "Parameters", "----------", "image : array or tensor", f"    {IMAGE}"]
    if companion is not None:
        lines += [f"{companion.name} : array or tensor (H, W)", f"    {companion_doc}"]
    for f in options:
        default = "" if f.default is MISSING or f.metadata["required"] else f" (default {f.default!r})"
        lines += [f"{_api_name(f)} :", f"    {f.metadata['help']}{default}"]
    steps = task_type.defaults.steps
    for name, _, kind, text in SHARED:
        text = text.format(steps=steps, zero=": the encoder alone" if steps == 0 else "")
        lines += [f"{name} : {kind}", f"    {text}"]
    lines += ["", "Returns", "-------",
              "The restored image, of the input's type, layout and dtype (and the standard deviation)."]
    function.__signature__ = signature
    function.__doc__ = "\n".join(lines)
    function.__name__ = function.__qualname__ = task_type.name
    function.__module__ = task_type.__module__
    return function

"""The ``restore`` command line: each command parses, calls the library, prints.

The restoring commands are built from the tasks (:data:`restore.tasks.TASKS`): each
takes the task's own options, its companion file (inpainting's ``--mask``) and the
options every restoring command shares (:class:`RestoreOptions`).
"""
from __future__ import annotations

import errno
import inspect
import math
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Optional, get_type_hints

import typer

# Only torch-free modules here, so that --help and argument errors answer at once;
# the commands import the rest (torch among it) when they run.
from .atomic import OutputError, check_output, check_writable, write_atomic
from .batch import Interrupted, PlanError, Progress, Result, file_restorer, parse_shard, plan, run, same_file, shard
from .images import IMAGE_SUFFIXES, MAX_PIXELS, ImageError, Picture, find_images, read_image, write_image
from .metrics import strict_json
from .priors import SHIPPED, PriorError, load_prior
from .tasks import TASKS, OptionError, Task
from .speed import SIZES as SPEED_SIZES
from .tasks.base import DETECT, MAX_SEED, option_fields
from .uncertainty import HEAT_MAP_TOP, SUFFIXES as MAP_SUFFIXES

app = typer.Typer(help="Repair damaged photos with a learned VAE prior.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.callback()
def main() -> None:
    """Repair damaged photos with a learned VAE prior.

    Each restoring command takes an image file or a folder (batch mode).
    """


#: Exit statuses, one per kind of failure (the README's table). 0 is success: every file restored,
#: or left alone on request (--skip-existing).
RESTORE_FAILED = 1   # a restoration failed: some files of a batch (the rest were written), or the one file
BAD_USAGE = 2        # refused before any work: an option, a missing or unreadable input, an output that cannot be written
UNAVAILABLE = 3      # this machine cannot run it: no such GPU, Ray missing or unreachable
INTERRUPTED = 130    # Ctrl-C, as a shell reports it: the files finished are kept and reported


def command_line(args: list[str] | None = None) -> None:
    """The ``restore`` console script: :data:`app`, with click's usage errors (an unknown option,
    a missing argument, a value of the wrong type) on one line like every other error, rather
    than in a box under the usage."""
    args = sys.argv[1:] if args is None else list(args)
    command = typer.main.get_command(app)
    if not args:        # 'restore' alone: the help
        command.main(args=args, prog_name="restore")
    # click's exceptions, from the click typer uses (its own copy since typer 0.2x)
    usage_error = typer.BadParameter.__base__
    click_exception = usage_error.__base__
    try:
        status = command.main(args=args, prog_name="restore", standalone_mode=False)
    except typer.Abort:     # Ctrl-C before a restoration began (one reports what it kept itself)
        typer.echo("stopped", err=True)
        sys.exit(INTERRUPTED)
    except click_exception as e:
        hint = ""
        if isinstance(e, usage_error):
            hint = f" (see '{e.ctx.command_path if e.ctx is not None else 'restore'} --help')"
        typer.echo(f"error: {e.format_message()}{hint}", err=True)
        sys.exit(e.exit_code)
    except OSError as e:
        # A path no file system takes (a name past its 255 bytes), met by the first check that looks
        # at it, whichever argument it is: the checks come before any work.
        if e.errno != errno.ENAMETOOLONG:
            raise
        typer.echo(f"error: {e.filename}: a name too long for the file system (at most 255 bytes each); "
                   "give a shorter one", err=True)
        sys.exit(BAD_USAGE)
    sys.exit(status if isinstance(status, int) else 0)


def fail(message: str, status: int = BAD_USAGE) -> None:
    """Print a one-line error and exit with ``status``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(status)


def fail_option(error: Exception, status: int = BAD_USAGE) -> None:
    """:func:`fail` with a library's message that begins with the option's name (``steps must be ...``),
    said as every option's is: ``--steps: must be ...``."""
    name, _, rest = str(error).partition(" ")
    fail(f"--{name.rstrip(':').replace('_', '-')}: {rest}", status)


def _device_or_fail(name: str):
    from .devices import DeviceError, resolve_device
    try:
        return resolve_device(name)
    except DeviceError as e:
        fail(f"--{e}", UNAVAILABLE)        # its messages begin with "device <name>:"
    except ValueError as e:
        fail(f"--{e}")


MODEL = typer.Option("photo", "--model", "-m", help="Prior: photo, photo-large (3.5-5x slower; 0.1-0.3 dB better super-resolution, inpainting and deblurring, not denoising), digits, or the path of a checkpoint from 'restore train'.")
DEVICE = typer.Option("auto", help="auto (GPU if present), cpu, cuda or cuda:N.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars (results, notes and the estimated sigma still print).")


def _cli(option_info) -> dict:
    return {"cli": option_info}


@dataclass
class RestoreOptions:
    """The options every restoring command takes, besides its task's own."""
    output: Optional[Path] = field(default=None, metadata=_cli(typer.Option(
        None, "--output", "-o", help="Output file, or folder in batch mode (default: <stem>_<task>.<ext> beside the input).")))
    model: str = field(default="photo", metadata=_cli(MODEL))
    steps: Optional[int] = field(default=None, metadata=_cli(typer.Option(None, help="Solver steps per tile (default: " + ", ".join(
        f"{t.name} {t.defaults.steps}" for t in TASKS.values()) + "); 0 = encoder only, fastest.")))
    mode: str = field(default="joint", metadata=_cli(typer.Option(
        "joint", help="joint: MAP over image and latent (keeps detail); latent: over the latent only.")))
    ensemble: Optional[int] = field(default=None, metadata=_cli(typer.Option(
        None, "--ensemble", help="Average the restorations of the image turned and flipped this many ways (2, 4 or 8; 1, "
        "the default, restores it as it is): better, and that many times slower.")))
    quick: bool = field(default=False, metadata=_cli(typer.Option(
        False, "--quick", help="Denoising's last filter of the data in windows alone, once: about 5x faster on large "
        "photographs, 0.5-1.3 dB lower; dejpeg leaves its own last filter out (about 3x faster), and so does "
        "the JPEG stage of a JPEG file's deblur and superres; otherwise those and inpaint are unchanged.")))
    device: str = field(default="auto", metadata=_cli(DEVICE))
    precision: str = field(default="auto", metadata=_cli(typer.Option(
        "auto", help="The networks' arithmetic: auto (bf16 on GPUs and on CPUs with AMX/AVX512-BF16, else fp32), fp32, bf16.")))
    ref: Optional[Path] = field(default=None, metadata=_cli(typer.Option(
        None, "--ref", help="Clean reference file or folder (matched by name) to score PSNR/SSIM.")))
    json: Optional[Path] = field(default=None, metadata=_cli(typer.Option(
        None, "--json", help="Write per-file results (metrics, seconds, device, model, sigma) to this JSON file.")))
    recursive: bool = field(default=False, metadata=_cli(typer.Option(
        False, "--recursive", "-r", help="In batch mode, descend into subfolders.")))
    overwrite: bool = field(default=False, metadata=_cli(typer.Option(
        False, "--overwrite", help="Replace outputs that already exist.")))
    skip_existing: bool = field(default=False, metadata=_cli(typer.Option(
        False, "--skip-existing", help="Leave files whose output exists alone (resume a batch).")))
    tile: Optional[int] = field(default=None, metadata=_cli(typer.Option(
        None, help="Tile size in output pixels for large images (default: the prior's).")))
    max_megapixels: float = field(default=MAX_PIXELS / 1e6, metadata=_cli(typer.Option(
        MAX_PIXELS / 1e6, "--max-megapixels", help="Refuse images larger than this many megapixels.")))
    quiet: bool = field(default=False, metadata=_cli(QUIET))
    samples: int = field(default=1, metadata=_cli(typer.Option(
        1, "--samples", help="Average this many posterior samples (1: the solver's estimate alone); needed for --uncertainty.")))
    seed: int = field(default=0, metadata=_cli(typer.Option(
        0, "--seed", help="Random seed of the samples: the same seed gives the same output.")))
    uncertainty: Optional[Path] = field(default=None, metadata=_cli(typer.Option(
        None, "--uncertainty", help="Write where the result is unsure (the samples' std per pixel): .png heat map "
        f"(black 0 to yellow {HEAT_MAP_TOP:g}+ in 0..255 units) or .tif raw values, or an existing folder "
        "(<output>_std.png in it); in batch mode a folder of .png heat maps, <name>.png each.")))
    shard: Optional[str] = field(default=None, metadata=_cli(typer.Option(
        None, "--shard", help="I/N: restore only the I-th of N disjoint parts of the sorted files (cluster job arrays).")))
    ray: bool = field(default=False, metadata=_cli(typer.Option(
        False, "--ray", help="Run the batch on Ray: a local instance with all cores and GPUs, or --ray-address.")))
    ray_address: Optional[str] = field(default=None, metadata=_cli(typer.Option(
        None, "--ray-address", help="Join a running Ray cluster ('auto' or ray://host:10001); implies --ray.")))
    threads_per_worker: Optional[int] = field(default=None, metadata=_cli(typer.Option(
        None, "--threads-per-worker", help="With --ray on CPUs: cores per worker (default 1, the fastest measured; more with fewer files than cores).")))


def _task_command(task_type: type[Task]):
    """The command of one task: its options, its companion file, then the shared ones."""
    params = [inspect.Parameter("source", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                                default=typer.Argument(..., metavar="SOURCE", help="Damaged image, or a folder of them."))]
    task_options = option_fields(task_type)
    for f in task_options:
        meta = f.metadata
        flags = meta["flags"] or (f"--{f.name.replace('_', '-')}",)
        default = ... if meta["required"] else ("auto" if f.default is None else f.default)
        kind = str if meta["parse"] else type(f.default)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                                        default=typer.Option(default, *flags, help=meta["help"])))
    companion = task_type.companion
    if companion is not None:
        params.append(inspect.Parameter(companion.name, inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                                        default=typer.Option(..., f"--{companion.name}", help=companion.help)))
    found = f"save_{companion.name}" if companion is not None and companion.detectable else None
    if found:
        params.append(inspect.Parameter(found, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                        default=typer.Option(None, f"--save-{companion.name}", help=(
                                            f"With --{companion.name} auto: write the {companion.name} found here "
                                            f"(a .png, .tif or .bmp file, or an existing folder: <output>_"
                                            f"{companion.name}.png in it; in batch mode a folder, one <name>.png "
                                            f"per image)."))))
    hints = get_type_hints(RestoreOptions)
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                                 default=f.metadata["cli"]) for f in fields(RestoreOptions)]

    def command(**given) -> None:
        try:
            task = task_type.from_options(**{f.name: f.metadata["parse"](given[f.name]) if f.metadata["parse"]
                                             else given[f.name] for f in task_options})
        except OptionError as e:
            fail(f"--{e.option.replace('_', '-')}: {e.reason}")
        options = RestoreOptions(**{f.name: given[f.name] for f in fields(RestoreOptions)})
        _restore_files(task, given["source"], given.get(companion.name) if companion else None, options,
                       save_found=given.get(found) if found else None)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = task_type.summary
    command.__name__ = f"{task_type.name}_command"
    return command


for _task in TASKS.values():
    app.command(_task.name)(_task_command(_task))


def _on_terminal() -> bool:
    """Whether the standard error is a terminal. A bar redraws itself there; in a log file or a pipe
    (a cluster's job) each redraw would be one more carriage return on one endless line, so there
    the bars are left out, as with -q, and each file's line stands alone."""
    return sys.stderr.isatty()


def _bar(*, total: int | None, desc: str, unit: str, quiet: bool, leave: bool = True):
    """A progress bar that names what it counts (``unit``, plural) and shows no rate: a rate over
    the first ticks is noise (an image's first step once read 167772 it/s). The time left is
    the average pace since the bar began (``smoothing=0``)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, leave=leave, smoothing=0, file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}{postfix}]")


class _Bars(Progress):
    """Progress bars on the terminal: images (in batch mode) and the solver's work on each image;
    notes and results between them (printed with ``-q`` too: it hides only the bars)."""

    def __init__(self, jobs: int, *, batch: bool, quiet: bool, name: str, device: str, steps: int, turns: int = 1,
                 second_look: bool = False):
        import time

        from tqdm import tqdm
        self.tqdm, self.clock, self.quiet, self.batch, self.device = tqdm, time.time, quiet, batch, device
        self.files = _bar(total=jobs, desc=name, unit="images", quiet=quiet or not batch)
        # What the prior's stage counts: each batch of tiles takes `steps` solver steps for each of
        # its `turns`, or one pass of the encoder (per turn) with 0 steps. With a mask found in the
        # image (`second_look`), the fill the second look reads comes first, one encoder pass per
        # batch (restore.damage.LOOK_STEPS), then the kept fill. The data's filter (denoise, dejpeg)
        # names its own stages and what they count.
        per_batch = f"{steps} x {turns} turns per batch of tiles" if turns > 1 else f"{steps} per batch of tiles"
        if second_look:
            from .damage import LOOK_STEPS
            per_batch += f"; {LOOK_STEPS or 1} per batch for the second look"
        self.unit = "batches of tiles" if steps == 0 else f"solver steps ({per_batch})"
        self.steps = None

    def start(self, job):
        self.job, self.steps, self.started = job, None, self.clock()
        self.desc, self.counted = job.source.name, self.unit

    def stage(self, name, unit):
        # Each stage its own bar, so that its time left is its own pace's: the filter's passes over
        # a photograph take longer than the prior's steps on it.
        if self.steps is not None:
            self.steps.close()
            self.steps, self.started = None, self.clock()
        self.desc = f"{self.job.source.name}, {name}"
        self.counted = unit or self.unit

    def step(self, done, total):
        if self.steps is None:      # opened on the first step, so notes before it print alone ...
            self.steps = _bar(total=total, desc=self.desc, unit=self.counted, quiet=self.quiet, leave=False)
            self.steps.start_t = self.started       # ... but timed from the stage's start
            if done == 0:                           # its opening line already said 0/total
                return
        self.steps.total, self.steps.n = total, done
        self.steps.refresh()

    def note(self, message):
        self.tqdm.write(message, file=sys.stderr)

    def finish(self, job, result):
        if self.steps is not None:
            self.steps.close()
        self.files.update(1)
        if result.status == "failed":
            self.tqdm.write(f"error: {result.message}", file=sys.stderr)
        elif result.status == "skipped":
            self.tqdm.write(f"skipped {job.source}: {result.output} exists")
        elif not self.batch or self.quiet:
            self.tqdm.write(f"wrote {result.output} ({result.seconds:.1f} s on {self.device})" + _scores(result))

    def close(self):
        self.files.close()


def _restore_files(task: Task, source: Path, companion: Optional[Path], options: RestoreOptions, *,
                   save_found: Optional[Path] = None) -> None:
    """Plan the jobs, run them with progress bars, print the summary; exit with the status of
    what failed, if anything did. A companion given as ``auto`` is found in each image."""
    from .pipeline import MAX_SAMPLES, SolverSettings

    detect = companion is not None and str(companion) == DETECT
    if detect and not (task.companion and task.companion.detectable):
        fail(f"--{task.companion.name if task.companion else 'mask'} auto: {task.name} cannot find it; give a file")
    companion = None if detect else companion
    # The detector's own options (inpaint's --sensitivity) mean nothing to a companion given as a file.
    tuned = [f"--{f.name}" for f in option_fields(type(task))
             if f.metadata.get("detector") and getattr(task, f.name) != f.default]
    if tuned and not detect:
        fail(f"{', '.join(tuned)}: only with --{task.companion.name} auto (how readily the damage is found); a "
             f"{task.companion.name} given as a file is taken as it is")
    if not 0 < options.max_megapixels < math.inf:
        fail(f"--max-megapixels: must be a positive number, got {options.max_megapixels}")
    if options.overwrite and options.skip_existing:
        fail("--overwrite and --skip-existing contradict each other; pick one")
    if options.json is not None and options.json.suffix.lower() != ".json":
        # (so it can replace no image: an input, an output, a mask, a reference or a map)
        fail(f"{options.json}: --json writes a JSON report; give a name ending in .json")
    if options.json is not None and options.json.is_dir():
        fail(f"{options.json}: is a folder; give --json a file name ending in .json")
    if options.json is not None and not options.json.parent.is_dir():
        fail(f"{options.json}: folder {options.json.parent} does not exist; create it first")
    if options.json is not None:
        try:
            check_writable(options.json.parent, output=options.json, hint="choose another --json")
        except OutputError as e:
            fail(str(e))
        if options.json.exists() and not options.overwrite:
            fail(f"{options.json}: exists; pass --overwrite to replace it or choose another --json")
    if not 1 <= options.samples <= MAX_SAMPLES:
        fail(f"--samples: give 1 to {MAX_SAMPLES} (each one more restoration of the image)")
    if options.uncertainty is not None and options.samples < 2:
        fail("--uncertainty: the spread needs samples; add --samples 8 (or any number of 2 or more)")
    on_ray = options.ray or options.ray_address is not None
    if options.threads_per_worker is not None and (not on_ray or options.threads_per_worker < 1):
        fail("--threads-per-worker: give a whole number of 1 or more, with --ray")
    try:
        part = None if options.shard is None else parse_shard(options.shard)
    except ValueError as e:
        fail(f"--shard: {e}")
    if on_ray:
        from .ray_runner import RayError, import_ray
        try:
            import_ray()
        except RayError as e:
            fail(str(e), UNAVAILABLE)
        if options.device not in ("auto", "cpu", "cuda"):
            fail("--device: with --ray give auto, cpu or cuda (each GPU worker takes its own GPU)")
    # With Ray the workers pick their devices; here the prior is only checked.
    dev = _device_or_fail("cpu" if on_ray else options.device)
    try:
        settings = SolverSettings(prior=options.model, steps=options.steps, mode=options.mode, device=dev,
                                  tile=options.tile, precision=options.precision, samples=options.samples,
                                  seed=options.seed, ensemble=options.ensemble, quick=options.quick)
        settings.check(task)
    except ValueError as e:
        fail_option(e)
    try:
        settings = replace(settings, prior=load_prior(options.model, dev))
        jobs = plan(source, options.output, task.name, recursive=options.recursive, companion=companion,
                    companion_name=task.companion.name if task.companion else "", reference=options.ref,
                    uncertainty=options.uncertainty, extension=task.output_suffix, detect=detect,
                    save_found=save_found, overwrite=options.overwrite)
    except (PriorError, PlanError) as e:
        fail(str(e))
    if (options.ensemble or 1) > 1 and not getattr(settings.prior, "symmetric", False):
        fail(f"--ensemble: the {options.model} prior's images are not alike turned; leave --ensemble out")
    advice = task.prior_advice(settings.prior)
    if advice:
        typer.echo(f"note: --model {options.model}: {advice}", err=True)
    if not jobs.batch and options.uncertainty is not None and jobs.jobs[0].uncertainty.suffix.lower() not in MAP_SUFFIXES:
        fail(f"{options.uncertainty}: an uncertainty map is .png (heat map) or .tif (raw values); rename it")
    for note in jobs.skipped:
        typer.echo(note, err=True)
    if not jobs.jobs:
        fail(f"{source}: no images to restore; it holds no PNG/JPEG/TIFF/WebP/BMP files")
    todo = jobs.jobs if part is None else shard(jobs.jobs, *part)
    if part is not None:
        typer.echo(f"shard {part[0]}/{part[1]}: {len(todo)} of {len(jobs.jobs)} files", err=True)
        if not todo:
            if options.json is not None:
                write_atomic(options.json, b"[]")
            return

    max_pixels = int(options.max_megapixels * 1e6)
    arithmetic = _arithmetic(options.precision, dev)
    where = f"{'Ray workers' if on_ray else dev}, {arithmetic}"
    bars = _Bars(len(todo), batch=jobs.batch, quiet=options.quiet or not _on_terminal(), name=task.name, device=where,
                 steps=task.defaults.steps if options.steps is None else options.steps, turns=options.ensemble or 1,
                 second_look=detect)
    common = dict(overwrite=options.overwrite, skip_existing=options.skip_existing, max_pixels=max_pixels,
                  progress=bars)
    try:
        if on_ray:
            import logging

            from .ray_runner import FileRestorer, run_on_ray
            logging.getLogger("ray").setLevel(logging.ERROR)    # its start-up notices would break the bars
            model = options.model if options.model in SHIPPED else str(Path(options.model).resolve())
            try:
                on = run_on_ray(todo, FileRestorer(task, replace(settings, prior=model), max_pixels),
                                address=options.ray_address, device=options.device,
                                threads_per_worker=options.threads_per_worker, **common)
            except RayError as e:
                bars.close()
                fail(str(e), UNAVAILABLE)
            results, dev = on.results, on.device
            arithmetic = on.precision or options.precision     # as the workers resolved it
            where = f"Ray {dev} workers, {arithmetic}"
        else:
            results = run(todo, file_restorer(task, settings, max_pixels=max_pixels), **common)
    except Interrupted as stop:
        bars.close()
        # What was finished is kept and reported; a file under way was not written.
        _report(stop.results, jobs.folder if jobs.batch else None, where, options.json, dev, arithmetic,
                options.model, task.name)
        typer.echo(f"interrupted: {len(stop.results)} of {len(todo)} files done; run the same command with "
                   "--skip-existing to restore the rest", err=True)
        raise typer.Exit(INTERRUPTED) from None
    bars.close()
    _report(results, jobs.folder if jobs.batch else None, where, options.json, dev, arithmetic, options.model,
            task.name)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        # One file refused for what it was given (input or output) is bad usage, as a missing file is;
        # in a batch, the failed files are reported and the rest were written.
        usage = not jobs.batch and failed[0].failure in ("input", "output")
        raise typer.Exit(BAD_USAGE if usage else RESTORE_FAILED)


def _report(results, folder: Path | None, where: str, json: Path | None, device, arithmetic: str, model: str,
            task: str) -> None:
    """A batch's summary (``folder``: its output folder; None for one file), and the ``--json`` report of
    ``results``."""
    if folder is not None:
        _print_summary(results, where, folder)
    if json is not None:
        # A failed file's output was never written: null, so that a reader never looks for it.
        report = [{**asdict(r), "output": r.output if r.status != "failed" else None, "device": str(device),
                   "precision": arithmetic, "model": model, "task": task} for r in results]
        write_atomic(json, strict_json(report).encode())


def _arithmetic(precision: str, device) -> str:
    """What ``--precision`` resolves to on ``device``: "fp32" or "bf16"."""
    from .devices import precision_name
    return precision_name(precision, device)


def _scores(r: Result) -> str:
    spread = "" if r.uncertainty is None else f"; mean std {r.uncertainty:.2f} levels of 255"
    if r.psnr is None:
        return spread
    return (f"; PSNR {r.psnr:.2f} dB (input {r.input_psnr:.2f}), "
            f"SSIM {r.ssim:.4f} (input {r.input_ssim:.4f})" + spread)


def _short_names(paths: list[Path]) -> list[str]:
    """Each path below the folder all of them share (a batch's ``a.png`` and ``sub/a.png`` stay apart)."""
    import os
    common = os.path.commonpath([str(p.parent) for p in paths])
    return [os.path.relpath(p, common) for p in paths]


def _mean(results: list[Result], key: str) -> float:
    """The mean of ``key`` over ``results``, leaving out infinite values (a PSNR of an image identical to
    its reference): one such file would make every mean infinite. NaN where none is finite."""
    values = [getattr(r, key) for r in results if math.isfinite(getattr(r, key))]
    return sum(values) / len(values) if values else math.nan


def _print_summary(results: list[Result], device: str, folder: Path) -> None:
    done = [r for r in results if r.status == "ok"]
    scored = [r for r in done if r.psnr is not None]
    if scored:
        names = _short_names([Path(r.source) for r in scored])
        width = max(len(name) for name in names)
        typer.echo(f"{'file':<{width}}  PSNR in  PSNR out  SSIM in  SSIM out  seconds")
        for r, name in zip(scored, names):
            typer.echo(f"{name:<{width}}  {r.input_psnr:7.2f}  {r.psnr:8.2f}  "
                       f"{r.input_ssim:7.4f}  {r.ssim:8.4f}  {r.seconds:7.1f}")
        typer.echo(f"{'mean':<{width}}  {_mean(scored, 'input_psnr'):7.2f}  {_mean(scored, 'psnr'):8.2f}  "
                   f"{_mean(scored, 'input_ssim'):7.4f}  {_mean(scored, 'ssim'):8.4f}  "
                   f"{_mean(scored, 'seconds'):7.1f}")
        infinite = sum(not math.isfinite(getattr(r, key)) for r in scored for key in ("psnr", "input_psnr"))
        if infinite:
            typer.echo(f"(the means leave out {infinite} infinite PSNR(s): an image identical to its reference)")
    n_skip = sum(r.status == "skipped" for r in results)
    n_fail = sum(r.status == "failed" for r in results)
    seconds = sum(r.seconds for r in done)
    typer.echo(f"{len(done)} restored, {n_skip} skipped, {n_fail} failed "
               f"({seconds:.1f} s on {device}); the outputs are in {folder}")


#: The train command's options whose names differ from the settings they set (restore.train.TrainSettings).
#: What ``train --resume`` takes from the command line; the rest comes from the checkpoint.
def _typed(ctx: typer.Context) -> list:
    """The command's parameters given on the command line (not left at their defaults)."""
    return [p for p in ctx.command.params if ctx.get_parameter_source(p.name).name == "COMMANDLINE"]


RESUME_TAKES = ("folder", "out", "steps", "minutes", "loaders", "seed", "resume", "device", "quiet")
#: What a checkpoint given to ``train --init`` decides itself: its architecture.
INIT_DECIDES = ("arch", "width", "levels", "blocks")
#: The train command's options that only a photo prior reads (--context and --task-encoder say so themselves).
PHOTO_ONLY = ("width", "levels", "blocks", "gray", "colour")
TRAIN_FLAGS = {"degraded_fraction": "degraded", "gray_fraction": "gray", "colour_fraction": "colour"}


class Architecture(str, Enum):
    photo = "photo"
    digits = "digits"


@app.command("train")
def train_command(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., metavar="FOLDER", help="Folder of clean training images (searched recursively), or a .npz file of crops from pretrained/pack_crops.py."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint file to write (.pt)."),
    arch: Architecture = typer.Option(Architecture.photo, help="photo: convolutional VAE, spatial latent; digits: 28x28 global-latent VAE."),
    steps: int = typer.Option(20000, help="Training steps (batches)."),
    batch_size: int = typer.Option(16, help="Crops per batch."),
    crop: Optional[int] = typer.Option(None, help="Crop size in pixels (default 64 for photo, 28 for digits)."),
    lr: float = typer.Option(1e-3, help="Adam learning rate (cosine-decayed to 1/20 of it)."),
    width: int = typer.Option(64, help="photo: feature channels of each conv layer."),
    latent: Optional[int] = typer.Option(None, help="photo: latent channels (default 8; with --init, more grow the checkpoint's latent); digits: latent dimension (default 16)."),
    levels: int = typer.Option(2, help="photo: downsamplings; the latent is 2**levels smaller than the image."),
    blocks: int = typer.Option(1, help="photo: residual blocks per level."),
    degraded: float = typer.Option(0.5, help="Share of each batch shown to the encoder damaged, as the tasks would hand it over."),
    task_list: str = typer.Option(",".join(TASKS), "--tasks", help="The tasks whose damage the encoder learns to see through, taking turns."),
    gray: float = typer.Option(0.0, help="photo: share of crops turned gray, so the prior also learns gray photographs."),
    colour: float = typer.Option(0.0, "--colour", help="photo: share of crops recoloured (hue turned, channels permuted, saturation raised), so the prior also learns colours its photographs lack."),
    loaders: int = typer.Option(1, "--loaders", help="Threads making batches ahead of the training step (more for a GPU)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Train for this long (the learning rate decays over it), or --steps, whichever ends first; with --resume, counted from the run's start."),
    checkpoint_every: int = typer.Option(500, help="Write a checkpoint every N steps."),
    pixel_scale: bool = typer.Option(False, "--pixel-scale", help="Also learn the decoder's scale per pixel (where it is sure, the solver trusts it over the data)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this checkpoint's weights (fine-tuning); layers it lacks start new."),
    task_encoder: Optional[str] = typer.Option(None, "--task-encoder", help="photo, with --init: train only an encoder of its own for this task (used by it alone), on its damage alone, against the prior's frozen decoder."),
    context: bool = typer.Option(False, "--context", help="photo: the encoder also reads what the solver knows of each pixel (the noise's level, the holes); with --init, the checkpoint's encoders grow to read it."),
    encoder_only: bool = typer.Option(False, "--encoder-only", help="Train only the encoder, against the frozen decoder (the prior itself does not change)."),
    prior_from_clean: bool = typer.Option(False, "--prior-from-clean", help="The prior (decoder) learns from the undamaged crops alone; the damaged ones (--degraded) teach only the encoder."),
    resume: bool = typer.Option(False, "--resume", help="Continue training from the checkpoint at --out, to its --steps (and --minutes) in all, counted from its start; give more to train longer."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out instead of refusing."),
    device: str = DEVICE,
    precision: str = typer.Option("auto", help="The networks' arithmetic: auto (bf16 on GPUs and on CPUs with AMX/AVX512-BF16), fp32, bf16."),
    seed: int = typer.Option(0, help="Random seed for crops, damage and sampling."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a VAE prior on a folder of clean images."""
    import torch

    from .train import (TrainError, TrainInterrupted, TrainSettings, build_model, check_crop, model_from, resume_from,
                        sampler_for, train)
    from .data import CropPackError

    if out.suffix.lower() != ".pt":      # (so it can replace no training image)
        fail(f"{out}: --out writes a checkpoint; give a name ending in .pt")
    dev = _device_or_fail(device)
    if folder.suffix == ".npz" and folder.is_file():
        files = [folder]
    elif not folder.is_dir():
        fail(f"{folder}: not a folder; give a folder of training images (or a .npz file of crops)")
    else:
        files = find_images(folder)
    if not files:
        fail(f"{folder}: no images found; put PNG/JPEG/TIFF/WebP/BMP files in it")
    if resume and overwrite:
        fail(f"--resume goes on with {out}, --overwrite starts it again; pick one")
    given = _typed(ctx)
    try:
        check_output(out, overwrite=overwrite or resume, hint="pass --resume to continue it or --overwrite to start again")
        check_writable(out.parent, output=out, hint="choose another --out")
        if init is not None and not resume and out.resolve() == init.resolve():
            raise OutputError(f"{out}: is the --init checkpoint, which training reads; choose another --out")
        state = None
        if resume:
            model, settings, state = resume_from(out, steps, minutes)
            settings.loaders = loaders
            unused = [p.opts[0] for p in given if p.name not in RESUME_TAKES]
            if unused:
                typer.echo(f"note: --resume goes on with {out}'s own model and settings; {', '.join(unused)} "
                           "not used (--overwrite starts it again with them)", err=True)
        else:
            decided = [p.opts[0] for p in given if p.name in INIT_DECIDES]
            if init is not None and decided:
                typer.echo(f"note: --init starts from {init}'s own architecture; {', '.join(decided)} not used",
                           err=True)
            model = (model_from(init, pixel_scale=pixel_scale, latent=latent, seed=seed, context=context)
                     if init is not None else
                     build_model(arch.value, width=width, latent=latent, levels=levels, blocks=blocks,
                                 pixel_scale=pixel_scale, context=context))
            photo_only = [p.opts[0] for p in given if p.name in PHOTO_ONLY]
            if model.fixed_size and photo_only:
                raise TrainError(f"{', '.join(photo_only)}: for photo priors; the digits prior has its own fixed "
                                 "size and one channel: leave them out")
            if task_encoder is not None:
                model, task_list = _with_task_encoder(model, task_encoder, init), task_encoder
            settings = TrainSettings(steps=steps, batch_size=batch_size, lr=lr, degraded_fraction=degraded,
                                     gray_fraction=gray, colour_fraction=colour, loaders=loaders, minutes=minutes,
                                     crop=crop if crop is not None else model.config.image_size if model.fixed_size else 64,
                                     checkpoint_every=checkpoint_every, seed=seed, init=str(init) if init else None,
                                     tasks=tuple(t.strip().lower() for t in task_list.split(",") if t.strip()),
                                     precision=precision, task_encoder=task_encoder, encoder_only=encoder_only,
                                     prior_from_clean=prior_from_clean)
        check_crop(model, settings.crop)
    except OptionError as e:
        fail(f"--{TRAIN_FLAGS.get(e.option, e.option.replace('_', '-'))}: {e.reason}")
    except (OutputError, TrainError, PriorError, ValueError) as e:
        fail(str(e))
    unreadable = []

    def left_out(e: ImageError) -> None:
        unreadable.append(e)
        typer.echo(f"note: skipping {e}", err=True)
    try:
        sampler = sampler_for(model, files, crop=settings.crop, seed=seed, note=left_out)
    except CropPackError as e:
        fail(str(e))
    except ValueError as e:
        fail(f"{folder}: none of its {len(files)} image files could be read; replace them with readable images"
             if len(unreadable) == len(files) else f"{folder}: {e}; lower --crop or add larger images")
    for path, (h, w) in sampler.too_small:
        typer.echo(f"note: skipping {path}: {w}x{h} pixels, under --crop {settings.crop} at every scale it is "
                   "trained at (its long side at most 1024)", err=True)
    torch.manual_seed(seed)
    count = sampler.image_count
    source = f"{len(sampler)} crops from {folder}" if folder.suffix == ".npz" else \
        f"{count} image{'' if count == 1 else 's'}" + ("" if len(sampler) == count else
                                                      f" (cropped from {len(sampler)} copies: each at full and, "
                                                      "where a crop fits, half size)")
    typer.echo(f"training on {source}, "
               f"{sum(p.numel() for p in model.parameters()):,} parameters, device {dev}")
    try:
        meta = train(model, sampler, settings, out, device=dev, resume=state, progress=not quiet and _on_terminal(),
                     log=None if quiet or _on_terminal() else lambda line: typer.echo(line, err=True))
    except TrainError as e:
        fail(str(e))
    except TrainInterrupted as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(INTERRUPTED) from None
    except KeyboardInterrupt:           # a second Ctrl-C: stopped at once, the last checkpoint kept
        typer.echo(f"interrupted: {out} holds the last checkpoint written, if any", err=True)
        raise typer.Exit(INTERRUPTED) from None
    typer.echo(f"wrote {out} after {meta['steps']} steps in {meta['seconds']:.0f} s")


def _with_task_encoder(model, task: str, init: Path | None):
    """``model`` given an encoder of its own for ``task`` (``--task-encoder``), or a one-line error."""
    from .train import TrainError
    if init is None:
        raise TrainError("--task-encoder needs --init: the prior whose frozen decoder the new encoder feeds")
    if task not in TASKS:
        raise TrainError(f"--task-encoder {task}: not a task; give one of {', '.join(TASKS)}")
    if not hasattr(model, "with_task_encoder"):
        raise TrainError(f"--task-encoder: {init} is a digits prior; task encoders are for photo priors")
    return model.with_task_encoder(task)


@app.command("bench")
def bench_command(
    ctx: typer.Context,
    folder: Optional[Path] = typer.Argument(None, metavar="FOLDER", help="Folder of clean images (default: scikit-image's photographs and the digits test split; --digits is for those)."),
    output: Path = typer.Option(Path("bench-report"), "--output", "-o", help="Report folder: results.md/.json/.csv and comparison sheets."),
    task_list: str = typer.Option(",".join(TASKS), "--tasks", help="Comma-separated tasks to measure."),
    quick: bool = typer.Option(False, "--quick", help="A small subset (one condition per task, 2 small images, 10 digits) for smoke tests."),
    size: int = typer.Option(256, help="Centre-crop photographs to this size (0 = whole images)."),
    digits: int = typer.Option(100, help="Digits from the test split, spread over the classes (0 = none; max 1000)."),
    model: str = MODEL,
    steps: Optional[int] = typer.Option(None, help="Solver steps per tile (default: each task's; 0: the encoder alone)."),
    device: str = DEVICE,
    precision: str = typer.Option("auto", help="restore's arithmetic: auto, fp32 or bf16 (as the restoring commands)."),
    seed: int = typer.Option(0, help="Seed of the damage (noise, masks)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a report folder that already has results."),
    speed: bool = typer.Option(False, "--speed", help="Time each task on generated photographs of growing size instead (speed.md, speed.json)."),
    sizes: str = typer.Option(",".join(f"{s:g}" for s in SPEED_SIZES), "--sizes", help="--speed: the photographs' sizes in megapixels."),
    samples: int = typer.Option(1, "--samples", help="2 or more: also measure the mean of this many posterior samples (1, the default: the estimate alone)."),
    ensemble: int = typer.Option(1, "--ensemble", help="Also measure restore's ensemble of this many turns "
                                 "(2, 4 or 8; photographs only)."),
    quiet: bool = QUIET,
) -> None:
    """Measure restore against classical tools (BM3D, OpenCV, scikit-image, bicubic/Lanczos)."""
    import os
    import platform
    import time

    from . import bench

    from .pipeline import MAX_SAMPLES, MAX_STEPS

    typed = _typed(ctx)
    given = {p.name for p in typed}
    # Options the run would not read are refused, not passed over: a run measures what its options say.
    other_mode = SPEED_IGNORES if speed else ("sizes",)
    ignored = [p.name.upper() if p.param_type_name == "argument" else p.opts[0] for p in typed if p.name in other_mode]
    if ignored:
        why = ("by --speed, which times generated photographs at each task's defaults (and --steps)" if speed
               else "without --speed")
        fail(f"{', '.join(ignored)}: not used {why}; leave {'it' if len(ignored) == 1 else 'them'} out")
    if quick and "size" in given:
        fail(f"--size: --quick measures at {bench.QUICK_SIZE} pixels; leave one of them out")
    wanted = {t.strip().lower() for t in task_list.split(",") if t.strip()}
    if not wanted or wanted - set(TASKS):
        fail(f"--tasks {task_list}: choose from {', '.join(TASKS)}")
    if not 0 <= digits <= 1000:
        fail("--digits: must be between 0 and 1000")
    if folder is not None and "digits" in given:
        fail(f"--digits: the digits are measured with scikit-image's photographs, not with {folder}; leave "
             "--digits out")
    if quick and digits > bench.QUICK_DIGITS and "digits" in given:
        fail(f"--digits: --quick measures at most {bench.QUICK_DIGITS} digits; leave one of them out")
    if size != 0 and not bench.MIN_SIDE <= size:
        fail(f"--size: must be 0 (whole images) or at least {bench.MIN_SIDE}")
    if steps is not None and not 0 <= steps <= MAX_STEPS:
        fail(f"--steps: must be 0 to {MAX_STEPS}")
    if not 0 <= seed <= MAX_SEED:
        fail(f"--seed: must be 0 to {MAX_SEED} (2**32 - 1)")
    if folder is not None and output.resolve().is_relative_to(folder.resolve()):
        default = "" if "output" in given else " (the default)"
        fail(f"-o {output}{default}: inside the folder measured, whose images the report's sheets would join; "
             "give -o a folder outside it")
    if precision not in ("auto", "fp32", "bf16"):
        fail(f"--precision {precision}: use auto, fp32 or bf16")
    if not 1 <= samples <= MAX_SAMPLES:
        fail(f"--samples: give 1 to {MAX_SAMPLES} (each one more restoration of every image)")
    from .reconstructor import check_ensemble
    try:
        check_ensemble(ensemble)
    except ValueError as e:
        fail_option(e)
    if speed and ensemble > 1:
        fail("--ensemble: --speed times each task's defaults (and --steps); leave --ensemble out")
    if speed:
        return _speed(output, wanted, sizes, model=model, steps=steps, device=device, precision=precision,
                      overwrite=overwrite, quiet=quiet)
    conditions = [c for c in bench.CONDITIONS if c.task.name in wanted
                  and (not quick or c.name in bench.QUICK_CONDITIONS)]
    if folder is not None and not folder.is_dir():
        fail(f"{folder}: not a folder; give a folder of clean images")
    _check_report_folder(output / "results.json", overwrite)
    dev = _device_or_fail(device)
    try:
        prior = load_prior(model, dev)
        if prior.fixed_size:
            fail(f"--model {model}: a prior of 28x28 digits cannot restore photographs (the digits are measured "
                 "with the shipped digits prior in every run); give --model a photo prior")
        sets = bench.image_sets(folder, prior=prior, size=size, digits=digits, quick=quick,
                                digits_prior=load_prior("digits", dev) if folder is None else None,
                                note=lambda said: typer.echo(f"note: leaving out {said}", err=True))
    except (PriorError, ImageError, ValueError) as e:
        fail(str(e))

    bar = _bar(total=bench.total_runs(sets, conditions, samples, ensemble), desc="bench", unit="runs",
               quiet=quiet or not _on_terminal())
    start, done = time.perf_counter(), []

    def ran(what: str) -> None:
        done.append(what)
        bar.set_postfix_str(what)
        bar.update(1)
    try:
        rows, shown, notes = bench.run_benchmark(sets, conditions, device=dev, steps=steps, precision=precision,
                                                 seed=seed, samples=samples, ensemble=ensemble, progress=ran)
    except KeyboardInterrupt:
        bar.close()
        typer.echo(f"interrupted after {len(done)} of {bar.total} runs; no report was written", err=True)
        raise typer.Exit(INTERRUPTED) from None
    bar.close()
    output.mkdir(parents=True, exist_ok=True)
    earlier = sorted(p.name for p in output.glob("sheet_*.png"))
    for note in notes:
        typer.echo(note, err=True)
    meta = {"seconds": round(time.perf_counter() - start, 1), "device": str(dev), "model": model,
            "precision": _arithmetic(precision, dev),
            "steps": steps if steps is not None else "task defaults", "machine": platform.platform(),
            "processor": platform.machine(), "cpus": os.cpu_count(), "quick": quick,
            "size": bench.effective_size(size, quick), "seed": seed, "samples": samples, "ensemble": ensemble}
    written = bench.write_report(output, rows, shown, meta)
    typer.echo((output / "results.md").read_text())
    typer.echo(f"wrote {len(written)} files to {output} in {meta['seconds']:.0f} s")
    stale = [name for name in earlier if name not in written]
    if stale:
        typer.echo(f"note: {output} still holds {len(stale)} sheet{'s' if len(stale) > 1 else ''} of an earlier run "
                   f"({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}), not of this report", err=True)


#: What ``bench --speed`` does not read: it times generated photographs, one run per size.
SPEED_IGNORES = ("folder", "quick", "size", "digits", "seed", "samples")


def _check_report_folder(report: Path, overwrite: bool) -> None:
    """A report folder may be new, or hold no ``report`` file yet, unless ``--overwrite``; it must
    be a folder (or one that can be made) where files can be written."""
    try:
        check_writable(report.parent, hint="give -o a folder for the report")
        if report.parent.is_dir():
            check_output(report, overwrite=overwrite, hint="pass --overwrite or choose another -o")
    except OutputError as e:
        fail(str(e))


def _speed(output: Path, tasks: set[str], sizes: str, *, model: str, steps: Optional[int], device: str,
           precision: str, overwrite: bool, quiet: bool) -> None:
    """``restore bench --speed``: time every task at every size; print and write the table."""
    from . import speed
    from .pipeline import SolverSettings

    try:
        megapixels = [float(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        fail(f"--sizes {sizes}: give megapixels separated by commas, e.g. 0.25,1,4")
    if not megapixels or not all(speed.SMALLEST <= m <= MAX_PIXELS / 1e6 for m in megapixels):
        fail(f"--sizes {sizes}: give megapixels from {speed.SMALLEST:g} to {MAX_PIXELS / 1e6:g}")
    _check_report_folder(output / "speed.json", overwrite)
    dev = _device_or_fail(device)
    try:
        settings = SolverSettings(prior=load_prior(model, dev), steps=steps, device=dev, precision=precision)
    except (PriorError, ValueError) as e:
        fail(str(e))
    output.mkdir(parents=True, exist_ok=True)
    bar = _bar(total=len(megapixels) * len(speed.conditions(tasks)), desc="speed", unit="runs",
               quiet=quiet or not _on_terminal())
    timings = speed.run_speed(megapixels, settings=settings, tasks=tasks,
                              progress=lambda what: (bar.set_postfix_str(what), bar.update(1)))
    bar.close()
    table = speed.markdown(timings)
    write_atomic(output / "speed.md", table.encode())
    write_atomic(output / "speed.json", strict_json(
        [{**asdict(t), "megapixels_per_second": t.megapixels_per_second} for t in timings], indent=1).encode())
    typer.echo(table)
    typer.echo(f"wrote speed.md and speed.json to {output}")


OVERWRITE_ONE = typer.Option(False, "--overwrite", help="Replace the output if it exists.")


@app.command("sample")
def sample_command(
    output: Path = typer.Option(..., "--output", "-o", help="Grid image to write (PNG, JPEG, ...)."),
    model: str = MODEL,
    n: int = typer.Option(64, "-n", help="Number of samples."),
    size: Optional[int] = typer.Option(None, help="Side of each sample in pixels (photo prior; default its tile size)."),
    temperature: float = typer.Option(1.0, help="Scale of z ~ N(0, t^2 I); below 1 gives cleaner, plainer samples."),
    seed: int = typer.Option(0, help="Seed of the random codes; equal seeds give equal samples."),
    device: str = DEVICE,
    overwrite: bool = OVERWRITE_ONE,
) -> None:
    """Draw images from the prior: decode random latent codes into a grid."""
    from .generate import grid, sample

    _write_generated(output, model, device, overwrite,
                     lambda vae: grid(sample(vae, n, size=size, temperature=temperature, seed=seed)))
    typer.echo(f"wrote {n} samples to {output}")


@app.command("interpolate")
def interpolate_command(
    start: Path = typer.Argument(..., metavar="START", help="First image."),
    end: Path = typer.Argument(..., metavar="END", help="Second image, of the same size."),
    output: Path = typer.Option(..., "--output", "-o", help="Image to write: the frames side by side."),
    model: str = MODEL,
    frames: int = typer.Option(8, help="Number of frames, both ends included."),
    device: str = DEVICE,
    overwrite: bool = OVERWRITE_ONE,
) -> None:
    """Walk the latent space between two images: decode codes on the line between their encodings."""
    from .generate import check_image_size, grid, interpolate

    def draw(vae):
        pictures = read_image(start), read_image(end)
        for path, picture in zip((start, end), pictures):
            lost = [what for what, lost in (("its transparency", picture.alpha is not None),
                                            ("its 16 bits", picture.bit_depth == 16)) if lost]
            if lost:
                typer.echo(f"note: {path}: {' and '.join(lost)} not carried: the frames are 8-bit and opaque", err=True)
        a, b = (picture.pixels for picture in pictures)
        for path, pixels in ((start, a), (end, b)):
            try:
                check_image_size(vae, *pixels.shape[:2])
            except ValueError as e:
                fail(f"{path}: {e}")
        if a.shape[:2] != b.shape[:2]:
            fail(f"{end}: {b.shape[1]}x{b.shape[0]} pixels, {start} {a.shape[1]}x{a.shape[0]}; give two images of "
                 "one size")
        return grid(interpolate(vae, a, b, frames), columns=frames)

    _write_generated(output, model, device, overwrite, draw, inputs=(start, end))
    typer.echo(f"wrote {frames} frames to {output}")


def _write_generated(output: Path, model: str, device: str, overwrite: bool, draw, inputs=()) -> None:
    """Load the prior, draw an image from it (``draw(vae) -> pixels``) and write it to ``output``
    (never one of ``inputs``); a problem with any of them is a one-line error."""
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        fail(f"-o {output}: not a name of an image file restore writes; end it in one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        if any(same_file(output, Path(p)) for p in inputs):
            raise OutputError(f"{output}: is an input; choose another -o (inputs are never overwritten)")
        check_output(output, overwrite=overwrite, hint="pass --overwrite to replace it or choose another -o")
        check_writable(output.parent, output=output, hint="choose another -o")
        write_image(output, Picture(draw(load_prior(model, _device_or_fail(device)))))
    except OptionError as e:
        fail(f"{'-n' if e.option == 'n' else '--' + e.option}: {e.reason}")
    except (PriorError, ImageError, ValueError) as e:
        fail(str(e))


# 'restore --help' lists each command with its docstring's first paragraph whole (click cuts it at
# 45 characters, mid-sentence).
for _info in app.registered_commands:
    _info.short_help = _info.short_help or inspect.cleandoc(_info.callback.__doc__ or "").split("\n\n")[0]

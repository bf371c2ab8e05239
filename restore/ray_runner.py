"""Batch mode on Ray: the same jobs, restored by Ray actors on this machine or a cluster.

Each actor loads the prior once and restores the files it is handed, one at a
time, through :func:`restore.batch.process`, so every rule of the local batch
(output names, atomic writes, never overwriting an input, ``--skip-existing``,
one bad file reported and the rest restored) holds unchanged. Ray places the
actors (one per GPU, or one per ``threads_per_worker`` CPU cores); this module
only hands each free actor the next path and collects the results.

A file that fails on its own (corrupt, wrong mask) comes back as a failed
result and is not retried: :func:`~restore.batch.process` never raises. A
worker that dies (killed process, lost node) has its file handed to another
worker, up to :data:`RETRIES` times, and a fresh worker takes its place.
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from .batch import Interrupted, Job, Progress, Result, RestoreFn, file_restorer, process

#: Times a file is handed to another worker after the one restoring it died.
RETRIES = 2

#: Seconds to wait for a worker to start when none is working: longer means the cluster has no room.
START_TIMEOUT = 120.0

#: CPU threads per worker when none are asked for. Measured on a 2-core machine, 40 photographs of
#: 512x512 denoised with 5 solver steps: 2 workers of 1 thread 0.49 files/s, 1 worker of 2 threads
#: 0.40 files/s, the local batch 0.36 files/s (more processes use the cores better than more threads).
THREADS_PER_WORKER = 1


@dataclass
class RayBatch:
    results: list[Result]            # in the jobs' order
    device: str                      # the workers' device: "cpu" or "cuda"
    workers: int
    start_seconds: float             # from starting (or joining) Ray to the first worker ready
    precision: str | None = None     # the first worker's arithmetic ("bf16", "fp32"), where known


class RayError(RuntimeError):
    """Ray is missing or its workers cannot start; the message says what to do."""


@dataclass(frozen=True)
class FileRestorer:
    """What a worker process needs to build its own ``restore_fn``: sent to each actor once.

    ``settings.prior`` is a shipped prior's name or a checkpoint's absolute path (each
    worker loads it on its own device).
    """
    task: object
    settings: object                 # restore.pipeline.SolverSettings
    max_pixels: int

    def __call__(self, device: str) -> RestoreFn:
        settings = replace(self.settings, device=device)
        return file_restorer(self.task, replace(settings, prior=settings.load()), max_pixels=self.max_pixels)

    def arithmetic(self, device: str) -> str:
        """What the networks run in on this worker's ``device``: "bf16" or "fp32"."""
        from .devices import precision_name
        return precision_name(self.settings.precision, device)


class _Notes(Progress):
    """Keeps a worker's notes to send back with the file's result."""

    def __init__(self):
        self.messages: list[str] = []

    def note(self, message):
        self.messages.append(message)


class _Worker:
    """A Ray actor: builds its ``restore_fn`` once, then restores one job per call."""

    def __init__(self, make_restore_fn: Callable[[str], RestoreFn], device: str, threads: int, options: dict,
                 cwd: str):
        import torch
        if not os.path.isdir(cwd):
            raise FileNotFoundError(f"the folder {cwd} is not on this Ray node; put the files on a file system "
                                    "every node shares, at the same path")
        os.chdir(cwd)                # this process is the actor's alone
        if device == "cpu":
            torch.set_num_threads(threads)
        self.restore_fn, self.options = make_restore_fn(device), options
        describe = getattr(make_restore_fn, "arithmetic", None)
        self.arithmetic = describe(device) if describe is not None else None

    def ready(self) -> str | None:
        """Called once the worker has started; its arithmetic, where known."""
        return self.arithmetic

    def restore(self, job: Job, replaceable: frozenset[Path] = frozenset()) -> tuple[Result, list[str]]:
        """Restore one job; ``replaceable``, for a retry, the job's files that a dead worker of this
        batch may have written (those that were not there before the batch)."""
        notes = _Notes()
        return process(job, self.restore_fn, progress=notes, replaceable=replaceable, **self.options), notes.messages


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayError("Ray is not installed; install it with: pip install 'restore[ray]'") from None
    return ray


def run_on_ray(jobs: list[Job], make_restore_fn: Callable[[str], RestoreFn], *, address: str | None = None,
               device: str = "auto", threads_per_worker: int | None = None, overwrite: bool = False,
               skip_existing: bool = False, max_pixels: int, progress: Progress | None = None) -> RayBatch:
    """Restore ``jobs`` on Ray; the results come back in the jobs' order.

    Parameters
    ----------
    jobs : list of Job
        From :func:`restore.batch.plan`; their paths must be readable and writable by every
        node (a shared file system on a cluster).
    make_restore_fn : callable
        ``make_restore_fn(device) -> restore_fn``, picklable (e.g. :class:`FileRestorer`);
        each worker calls it once.
    address : str, optional
        None starts a local Ray instance with this machine's cores and GPUs (or joins the
        one this process already runs); ``"auto"`` or ``"ray://host:10001"`` joins a cluster.
    device : {"auto", "cpu", "cuda"}
        auto: one worker per GPU where the cluster has GPUs, else CPU workers.
    threads_per_worker : int, optional
        CPU cores (and threads) per CPU worker; default :data:`THREADS_PER_WORKER`, more
        where there are fewer files than cores.
    """
    ray = import_ray()
    progress = progress or Progress()
    threads = threads_per_worker
    if threads is not None and threads < 1:
        raise ValueError(f"threads per worker must be at least 1, got {threads}")
    start = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            # A local instance takes the cores this process may use (a job array's share of a node).
            cores = len(os.sched_getaffinity(0)) if address is None and hasattr(os, "sched_getaffinity") else None
            options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
            try:
                ray.init(address=address, num_cpus=cores, **options)
            except ValueError as e:  # no address, but Ray found a running cluster (RAY_ADDRESS, `ray start`)
                if cores is None or "existing cluster" not in str(e):
                    raise
                ray.init(address=address, **options)
        except Exception as e:       # ConnectionError, a bad address, a version mismatch...
            raise RayError(f"cannot start or reach Ray at {address or 'this machine'}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    try:
        return _run(ray, jobs, make_restore_fn, device, threads,
                    dict(overwrite=overwrite, skip_existing=skip_existing, max_pixels=max_pixels), progress, start)
    finally:
        if started_here:
            ray.shutdown()


def _run(ray, jobs, make_restore_fn, device, threads, options, progress, start) -> RayBatch:
    total, free = ray.cluster_resources(), ray.available_resources()
    gpus = int(total.get("GPU", 0))
    if device.startswith("cuda") and not gpus:
        raise RayError("--device cuda: the Ray cluster has no GPU; use --device auto or cpu")
    if gpus and device != "cpu":
        count = min(gpus, max(1, int(free.get("GPU", 0))))
        actor_options, worker_device, threads = dict(num_gpus=1, num_cpus=1), "cuda", 1
    else:
        cpus = int(total.get("CPU", 1))
        node = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [cpus])
        if threads is None:          # fewer files than cores: each worker gets the spare cores of a node
            threads = min(node, max(THREADS_PER_WORKER, cpus // max(1, len(jobs))))
        if threads > node:
            raise RayError(f"--threads-per-worker {threads}: the largest Ray node has {node} CPUs; give at most {node}")
        count = max(1, int(free.get("CPU", 0)) // threads)
        actor_options, worker_device = dict(num_cpus=threads), "cpu"
    count = min(count, len(jobs))
    actor = ray.remote(_Worker).options(max_restarts=0, max_task_retries=0, **actor_options)
    cwd = os.getcwd()                # relative paths mean the same on a cluster's nodes as here
    created = []

    def new_worker():
        worker = actor.remote(make_restore_fn, worker_device, threads, options, cwd)
        created.append(worker)
        starting[worker.ready.remote()] = worker

    results: list[Result | None] = [None] * len(jobs)
    deaths = [0] * len(jobs)
    existed = {path for job in jobs for path in _files(job) if path.exists()}
    waiting = deque(range(len(jobs)))
    idle: list = []
    running: dict = {}               # a call's ObjectRef -> (job index, worker)
    starting: dict = {}              # a worker's ready() ObjectRef -> worker
    start_seconds = precision = None
    try:
        for _ in range(count):
            new_worker()
        while waiting or running:
            while idle and waiting:
                i, worker = waiting.popleft(), idle.pop()
                # A retry may replace the files this batch wrote (its worker died after writing
                # them): the output, the uncertainty map, the mask found; never one that was
                # there before the batch.
                replaceable = frozenset(_files(jobs[i]) - existed) if deaths[i] else frozenset()
                running[worker.restore.remote(jobs[i], replaceable)] = (i, worker)
            done, _ = ray.wait([*running, *starting], num_returns=1, timeout=None if running else START_TIMEOUT)
            if not done:
                raise RayError(f"no Ray worker became ready in {START_TIMEOUT:.0f} s: the cluster has no free "
                               f"{'GPU' if worker_device == 'cuda' else f'{threads} CPUs'} for one (see 'ray status')")
            ref = done[0]
            if ref in starting:
                worker = starting.pop(ref)
                try:
                    arithmetic = ray.get(ref)
                    precision = precision or arithmetic
                except ray.exceptions.RayError as e:
                    if not (idle or running or starting):
                        raise RayError(f"Ray workers could not start: {_first_line(e)}") from None
                    continue         # the others go on
                idle.append(worker)
                if start_seconds is None:
                    start_seconds = time.perf_counter() - start
                    progress.note(f"Ray: {count} {worker_device} worker{'s' * (count > 1)}"
                                  + (f" of {threads} thread{'s' * (threads > 1)}" if worker_device == "cpu" else "")
                                  + f", the first ready in {start_seconds:.1f} s")
                continue
            i, worker = running.pop(ref)
            try:
                result, notes = ray.get(ref)
                idle.append(worker)
            except ray.exceptions.RayTaskError as e:     # not a bad file (process() reports those): a bug
                idle.append(worker)
                result, notes = Result(str(jobs[i].source), str(jobs[i].output), "failed",
                                       f"{jobs[i].source}: unexpected {_first_line(e)}", failure="restore"), []
            except ray.exceptions.RayError as e:         # the worker died: killed, out of memory, node lost
                ray.kill(worker)
                new_worker()
                deaths[i] += 1
                if deaths[i] <= RETRIES:
                    waiting.appendleft(i)
                    continue
                result, notes = Result(str(jobs[i].source), str(jobs[i].output), "failed",
                                       f"{jobs[i].source}: its worker died {deaths[i]} times ({_first_line(e)})",
                                       failure="restore"), []
            for message in notes:
                progress.note(message)
            results[i] = result
            progress.finish(jobs[i], result)
    except KeyboardInterrupt:        # the workers under way are stopped below; their outputs are atomic
        raise Interrupted([r for r in results if r is not None]) from None
    finally:
        for worker in created:
            ray.kill(worker)
    return RayBatch(results, worker_device, count, start_seconds or 0.0, precision)


def _files(job: Job) -> set[Path]:
    """The files restoring ``job`` writes."""
    return {path for path in (job.output, job.uncertainty, job.found) if path is not None}


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

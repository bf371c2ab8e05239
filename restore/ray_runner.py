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

import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

from .batch import Job, Progress, Result, RestoreFn, file_restorer, process

#: Times a file is handed to another worker after the one restoring it died.
RETRIES = 2

#: CPU threads per worker when none are asked for. Measured on a 2-core machine, 40 photographs of
#: 512x512 denoised with 5 solver steps: 2 workers of 1 thread 0.49 files/s, 1 worker of 2 threads
#: 0.40 files/s, the local batch 0.36 files/s (more processes use the cores better than more threads).
THREADS_PER_WORKER = 1


@dataclass
class RayBatch:
    results: list[Result]            # in the jobs' order
    device: str                      # the workers' device: "cpu" or "cuda"
    workers: int
    start_seconds: float             # from starting (or joining) Ray to every worker ready


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


class _Notes(Progress):
    """Keeps a worker's notes to send back with the file's result."""

    def __init__(self):
        self.messages: list[str] = []

    def note(self, message):
        self.messages.append(message)


class _Worker:
    """A Ray actor: builds its ``restore_fn`` once, then restores one job per call."""

    def __init__(self, make_restore_fn: Callable[[str], RestoreFn], device: str, threads: int, options: dict):
        import torch
        if device == "cpu":
            torch.set_num_threads(threads)
        self.restore_fn, self.options = make_restore_fn(device), options

    def ready(self) -> bool:
        return True

    def restore(self, job: Job) -> tuple[Result, list[str]]:
        notes = _Notes()
        return process(job, self.restore_fn, progress=notes, **self.options), notes.messages


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
        CPU cores (and threads) per CPU worker; default :data:`THREADS_PER_WORKER`.
    """
    ray = import_ray()
    progress = progress or Progress()
    threads = threads_per_worker or THREADS_PER_WORKER
    if threads < 1:
        raise ValueError(f"threads per worker must be at least 1, got {threads}")
    start = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     configure_logging=False)
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
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if device.startswith("cuda") and not gpus:
        raise RayError("--device cuda: the Ray cluster has no GPU; use --device auto or cpu")
    if gpus and device != "cpu":
        count, actor_options, worker_device = gpus, dict(num_gpus=1, num_cpus=1), "cuda"
    else:
        count = max(1, int(resources.get("CPU", 1)) // threads)
        actor_options, worker_device = dict(num_cpus=threads), "cpu"
    count = max(1, min(count, len(jobs)))
    actor = ray.remote(_Worker).options(max_restarts=0, max_task_retries=0, **actor_options)

    def new_worker():
        return actor.remote(make_restore_fn, worker_device, threads, options)

    workers = [new_worker() for _ in range(count)]
    try:
        ray.get([w.ready.remote() for w in workers])
    except ray.exceptions.RayError as e:
        raise RayError(f"Ray workers could not start: {_first_line(e)}") from None
    start_seconds = time.perf_counter() - start
    progress.note(f"Ray: {count} {worker_device} worker{'s' * (count > 1)}"
                  + (f" of {threads} thread{'s' * (threads > 1)}" if worker_device == "cpu" else "")
                  + f", started in {start_seconds:.1f} s")

    results: list[Result | None] = [None] * len(jobs)
    deaths = [0] * len(jobs)
    waiting = deque(range(len(jobs)))
    idle = list(workers)
    running: dict = {}               # a call's ObjectRef -> (job index, worker)
    starting: dict = {}              # a replacement's ready() ObjectRef -> worker
    while waiting or running:
        while idle and waiting:
            i, worker = waiting.popleft(), idle.pop()
            running[worker.restore.remote(jobs[i])] = (i, worker)
        if not running and not starting:
            raise RayError("every Ray worker died; see the Ray logs (ray status, /tmp/ray/session_latest/logs)")
        [ref], _ = ray.wait([*running, *starting], num_returns=1)
        if ref in starting:
            worker = starting.pop(ref)
            try:
                ray.get(ref)
                idle.append(worker)
            except ray.exceptions.RayError:
                pass                 # no room for it any more (a lost node): the others go on
            continue
        i, worker = running.pop(ref)
        try:
            result, notes = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
            ray.kill(worker)
            replacement = new_worker()
            starting[replacement.ready.remote()] = replacement
            deaths[i] += 1
            if deaths[i] <= RETRIES:
                waiting.appendleft(i)
                continue
            result, notes = Result(str(jobs[i].source), str(jobs[i].output), "failed",
                                   f"{jobs[i].source}: its worker died {deaths[i]} times ({_first_line(e)})"), []
        except ray.exceptions.RayTaskError as e:     # not a bad file (process() reports those): a bug
            idle.append(worker)
            result, notes = Result(str(jobs[i].source), str(jobs[i].output), "failed",
                                   f"{jobs[i].source}: unexpected {_first_line(e)}"), []
        else:
            idle.append(worker)
        for message in notes:
            progress.note(message)
        results[i] = result
        progress.finish(jobs[i], result)
    for worker in [*workers, *idle, *starting.values()]:
        ray.kill(worker)
    return RayBatch(results, worker_device, count, start_seconds)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

"""Opening a backend from a config section, in one place: what it is called in the cache and what it
costs (pure functions of the section: nothing is built, started or asked), and the one opened for a
stage behind the cache.

A section is anything naming a backend: `sample`, `caption`, `verify.judge`, `evaluate.judge`, a
`reference`. Its API key is resolved by the process that opens it (`tasks.teachers.secrets`: an
environment variable, or a Prefect Secret block through the loader the flows install in every
process that runs a task), so no key crosses a task boundary.

Per stage a backend is built once per process: `shared` keeps one per section and scope (one stage of
one flow run) in the process (a thread runner's, or a dask worker's) until `close_backends(scope)` at
the stage's end; a ray worker closes its own after each task, as no call reaches every ray worker.
A worker's share (1 / runner.workers) of the endpoint's rpm, tpm and concurrency is its own.

It lives in students/, above tasks/, because two backends are models in this process
(students/teachers.py: `local`, `student`); the remote ones are tasks/teachers/. Code in tasks/ that
needs a backend is handed an opened one.
"""

import importlib
import json
import math
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from schemas.config import FactoryConfig, ModelPrice
from schemas.config.data import dtype_suffix
from schemas.errors import InputError
from schemas.paths import DataDir
from students.teachers import engine_of, trained_student
from tasks.teachers import RemoteTeacher, Teacher
from tasks.teachers.budget import Budget
from tasks.teachers.engine import RequestEngine
from teacher_cache import CachedTeacher, CacheStore
from teacher_cache.prices import price_for

REMOTE = ("openai", "gemini", "vllm")  # reached over HTTP: an endpoint names their identity
# Imported by name on use, so naming the local teacher never imports an SDK (nor the reverse).
TEACHERS = {"local": "students.teachers:LocalTeacher", "student": "students.teachers:StudentTeacher",
            "openai": "tasks.teachers.openai_compat:OpenAITeacher",
            "gemini": "tasks.teachers.gemini:GeminiTeacher", "vllm": "tasks.teachers.vllm:VllmTeacher"}


def teacher_for(cfg) -> Teacher | RemoteTeacher:
    """The backend a `SampleConfig` (or `CaptionConfig`) names. Constructing one starts and asks nothing."""
    name = getattr(cfg, "teacher", None) or cfg.captioner
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)}")
    module, cls = TEACHERS[name].split(":")
    return getattr(importlib.import_module(module), cls).from_config(cfg)


def name_of(section) -> str:
    """The backend a section names (a caption section names it `captioner`)."""
    return getattr(section, "teacher", None) or section.captioner


def student_meta(section) -> dict:
    """A student teacher's train_meta.json (its base model and fingerprint), checked as the backend checks it."""
    return trained_student(section.model)


def identity(section) -> str:
    """The cache identity of the section's backend: `backend/model` (an endpoint may name its own; a
    student's names its directory and adapter fingerprint, so a retrained student is a new teacher)."""
    name = name_of(section)
    typed = dtype_suffix(getattr(section, "dtype", "float32"))
    if name == "student":
        path = Path(section.model)
        return f"student/{path.parent.name}/{path.name}@{student_meta(section)['fingerprint'][:8]}" + typed
    if name in REMOTE and section.endpoint.identity:
        return section.endpoint.identity
    if name == "local" and engine_of(section.model, getattr(section, "engine", "transformers"),
                                     getattr(section, "dtype", "float32")) == "llama_cpp":
        return f"local/{section.model}+llama.cpp"
    return f"{name}/{section.model}" + typed


def price(section, cfg: FactoryConfig) -> ModelPrice | None:
    """USD per token of the section's model (None: unknown), at the batch price when it asks in batches."""
    if name_of(section) == "student":  # a local model: its base's price if the config names one, else free
        found = price_for("local", student_meta(section)["base_model"], cfg.prices)
    else:
        found = price_for(name_of(section), section.model, cfg.prices)
    if found is None or not getattr(section, "batch", False):
        return found
    return ModelPrice(input_per_mtok=found.input_per_mtok * section.batch_price,
                      output_per_mtok=found.output_per_mtok * section.batch_price)


@contextmanager
def opened(section, cfg: FactoryConfig, data: DataDir) -> Iterator[CachedTeacher]:
    """The section's backend, built here, behind the cache, for one stage: a managed vLLM server is
    started here and stopped when the stage ends."""
    backend = teacher_for(section)
    if hasattr(backend, "start"):
        backend.start()
    try:
        store = CacheStore(data.teacher_cache)
        if getattr(section, "batch", False):  # config validation allows batches on openai / gemini only
            from tasks.teachers.batch import BatchAsker, batches_for

            asker = BatchAsker(batches_for(backend, section.batch_poll_s), store, section.endpoint.max_attempts)
        else:
            asker = RequestEngine(backend, budget=budget(section, cfg)) if isinstance(backend, RemoteTeacher) \
                else backend
        teacher = CachedTeacher(asker, store, price(section, cfg))
        try:
            yield teacher
        finally:
            teacher.close()
    finally:
        if hasattr(backend, "stop"):
            backend.stop()


# this process's spending caps, by backend identity, cap, run and data directory: one for the whole run,
# however often its section is opened (the judges are opened once per student)
BUDGETS: dict[tuple[str, float, str, str], Budget] = {}
_budgets_lock = threading.Lock()  # not _shared_lock: `shared` holds that one while it opens a backend


def budget(section, cfg: FactoryConfig) -> Budget | None:
    """The section's spending cap (endpoint.budget_usd, this process's share) at its model's price, shared by
    every opening of the backend in this process; None without a cap."""
    cap = getattr(getattr(section, "endpoint", None), "budget_usd", None)
    if cap is None:
        return None
    found, who = price(section, cfg), identity(section)
    if found is None or found.input_per_mtok == found.output_per_mtok == 0:
        why = "price is unknown" if found is None else "price is 0 (self-hosted), so nothing would count"
        raise InputError(f"endpoint.budget_usd is set for {who}, whose {why}: add its model to `prices` (USD per "
                         "million input and output tokens) so its spend can be counted")
    with _budgets_lock:
        return BUDGETS.setdefault((who, cap, cfg.run, str(cfg.data_dir)), Budget(cap, found, cfg.runner.shares()))


def divided(section, shares: int):
    """The section with its endpoint's limits split among `shares` workers, so that together they keep them."""
    endpoint = getattr(section, "endpoint", None)
    if shares == 1 or endpoint is None:
        return section
    limits = {"concurrency": max(1, math.ceil(endpoint.concurrency / shares)),
              "rpm": endpoint.rpm and endpoint.rpm / shares, "tpm": endpoint.tpm and endpoint.tpm / shares,
              "budget_usd": endpoint.budget_usd and endpoint.budget_usd / shares}
    return section.model_copy(update={"endpoint": endpoint.model_copy(update=limits)})


# this process's open backends, by (scope, section): until their stage's end closes its scope
SHARED: dict[tuple[str, str], tuple[ExitStack, CachedTeacher]] = {}
_shared_lock = threading.Lock()


def shared(section, cfg: FactoryConfig, data: DataDir, scope: str = "") -> CachedTeacher | None:
    """The section's backend for a shard task (None for no section), opened in the process that runs the
    task, once per process and `scope` (one stage of one flow run: two flows on one dask cluster share
    no backend), with this process's share of the endpoint's limits."""
    if section is None:
        return None
    section = divided(section, cfg.runner.shares())
    key = (scope, json.dumps([section.model_dump(mode="json"), str(data.root),
                              cfg.model_dump(mode="json")["prices"]]))
    with _shared_lock:
        if key not in SHARED:
            stack = ExitStack()
            SHARED[key] = (stack, stack.enter_context(opened(section, cfg, data)))
        return SHARED[key][1]


def close_backends(scope: str | None = None) -> None:
    """Closes the backends this process opened for `scope` (a stage's end; None: every scope)."""
    with _shared_lock:
        keys = [k for k in SHARED if scope is None or k[0] == scope]
        stacks = [SHARED.pop(k)[0] for k in keys]
    for stack in stacks:
        stack.close()


def arms_teacher(cfg: FactoryConfig) -> str:
    """The teacher whose selections the arms (and their cost columns) use."""
    return cfg.arms.teacher or identity(cfg.sample)

"""Opening a configured backend: the teacher (or captioner, judge, reference model) a config section
names, by name from `TEACHERS`, behind the cache (`opened`), and its identity and price.

It lives here, above tasks/, because two backends are models in this process (students/teachers.py:
`local`, `student`); the remote ones are tasks/teachers/. Code in tasks/ that needs a backend is
handed an opened one.
"""

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from schemas.config import FactoryConfig, ModelPrice
from schemas.paths import DataDir
from tasks.teachers import RemoteTeacher, Teacher
from tasks.teachers.engine import RequestEngine
from teacher_cache import CachedTeacher, CacheStore
from teacher_cache.prices import price_for

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


@contextmanager
def opened(section, cfg: FactoryConfig, data: DataDir) -> Iterator[CachedTeacher]:
    """The teacher (or captioner) a config section names, behind the cache, for one stage:
    a managed vLLM server is started here and stopped when the stage ends."""
    backend = teacher_for(section)
    if hasattr(backend, "start"):
        backend.start()
    try:
        price = price_for(backend.backend, backend.model, cfg.prices)
        store = CacheStore(data.teacher_cache)
        asker = RequestEngine(backend) if isinstance(backend, RemoteTeacher) else backend
        if getattr(section, "batch", False):
            from tasks.teachers.batch import BatchAsker, batches_for

            asker = BatchAsker(batches_for(backend, section.batch_poll_s), store,  # config allows openai / gemini only
                               getattr(getattr(section, "endpoint", None), "max_attempts", 3))
            price = price and ModelPrice(input_per_mtok=price.input_per_mtok * section.batch_price,
                                         output_per_mtok=price.output_per_mtok * section.batch_price)
        teacher = CachedTeacher(asker, store, price)
        try:
            yield teacher
        finally:
            teacher.close()
    finally:
        if hasattr(backend, "stop"):
            backend.stop()


def priced(section, cfg: FactoryConfig) -> bool:
    """Whether the configured model has a known price, without opening it."""
    b = teacher_for(section)
    return price_for(b.backend, b.model, cfg.prices) is not None


def identity_of(section) -> str:
    """The cache identity of a configured teacher, without starting or asking it anything."""
    return teacher_for(section).identity


def arms_teacher(cfg: FactoryConfig) -> str:
    """The teacher whose selections the arms (and their cost columns) use."""
    return cfg.arms.teacher or identity_of(cfg.sample)

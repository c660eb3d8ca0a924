"""The console's share of an explained error: Prefect's lines about it without their traceback, since
the CLI's own line says what to do. Used by the CLI and by every shard task (a dask or ray worker's
console too)."""

import logging

from schemas.errors import explain


class WithoutExplainedTraceback(logging.Formatter):
    """A console formatter that prints Prefect's lines about an error the CLI explains without
    their traceback (the CLI's own line says what to do); other handlers, such as the one that
    sends logs to the Prefect server, still get it."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info and record.exc_info[1] is not None and explain(record.exc_info[1])):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def quiet_explained_tracebacks() -> None:
    """Wraps the formatter of every console handler of Prefect's loggers."""
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith("prefect")]
    for handler in {h for lg in [logging.root, *loggers] for h in lg.handlers}:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler.formatter, WithoutExplainedTraceback):
            handler.setFormatter(WithoutExplainedTraceback(handler.formatter or logging.Formatter()))

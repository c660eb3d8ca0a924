"""Preloaded in every worker process of the local dask cluster (`flows.clusters`).

A terminal's Ctrl-C reaches the whole foreground process group, the cluster's worker processes
included. Only the CLI acts on it: it tells the workers through its stop file
(`schemas.errors.Interrupt`), so their requests in flight are answered and stored; a worker
ignores the signal instead of dying with a KeyboardInterrupt.
"""

import signal
import threading


def dask_setup(worker) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

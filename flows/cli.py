"""The `distillery` command: the whole factory or one stage, without a Prefect server.

    distillery run --config configs/default.yaml --data-dir data
    distillery distill --config configs/rounds.yaml
    distillery ingest --source scienceqa --path DIR
    distillery sample --config my.yaml
    distillery import-traces --file r1.jsonl --teacher deepseek-r1 --source scienceqa
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from pydantic import ValidationError

from flows.console import quiet_explained_tracebacks
from schemas.config import SOURCE_NAMES, FactoryConfig
from schemas.errors import INTERRUPT, Interrupt, explain, interrupt, interrupted, validation_line
from schemas.paths import DataDir

HARD_STOP_S = 10.0  # after the first Ctrl-C, a stage that does not end by itself (training) is ended
STAGE_NAMES = ["ingest", "caption", "sample", "verify", "select", "arms", "export", "train", "evaluate", "deploy",
               "report"]
DEPLOY_ALONE = ["best", "base"]  # `distillery deploy` without deploy.students


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="distillery", description="Teacher-to-student distillation data factory.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ["run", "distill", *STAGE_NAMES, "import-traces"]:
        s = sub.add_parser(name, help="the whole factory" if name == "run" else
                           "rounds of the factory, each round's best student teaching the next" if name == "distill" else
                           "store existing traces as a teacher's samples" if name == "import-traces" else
                           f"the {name} stage alone")
        s.add_argument("--config", help="YAML file with a FactoryConfig (defaults when omitted)")
        s.add_argument("--data-dir", help="data directory (overrides data_dir in the config)")
        s.add_argument("--run-name", help="run name (overrides run in the config)")
        s.add_argument("--debug", action="store_true", help="show the traceback of an error")
        if name in ("ingest", "run", "distill"):
            s.add_argument("--source", choices=SOURCE_NAMES, help="problem source (a preset, hf, files, ...)")
            s.add_argument("--path", help="source path: a directory, data files, a saved dataset or a hub id")
        if name == "import-traces":
            import_arguments(s)
        if name == "verify":
            s.add_argument("--audit", action="store_true", help="also compare the graders on the same samples "
                           "(reports/verify-audit/audit.md)")
    return p


def import_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--file", required=True, help="jsonl, json or parquet: one row per response (or a list of k)")
    s.add_argument("--teacher", required=True, help="name the samples are stored under (samples/<teacher>/)")
    s.add_argument("--source", required=True, help="the ingested source whose ids the file uses, e.g. scienceqa")
    s.add_argument("--variant", choices=["plain", "lecture"], default="plain",
                   help="prompt variant of rows without a `variant` column (default plain)")
    s.add_argument("--model", help="model name for rows without a `model` column, and for pricing")
    for what in ("id", "response", "reasoning"):
        s.add_argument(f"--{what}-column", help=f"the {what} column, when not one of the usual names")


def load_config(args: argparse.Namespace) -> FactoryConfig:
    data = FactoryConfig.from_yaml(args.config).model_dump() if args.config else FactoryConfig().model_dump()
    if args.data_dir:
        data["data_dir"] = args.data_dir
    if args.run_name:
        data["run"] = args.run_name
    if args.command in ("ingest", "run", "distill"):  # import-traces' --source names the ingested source, not a new one
        if args.source and args.source != data["ingest"]["source"]:  # another source: its own fields only
            data["ingest"] = {k: data["ingest"][k] for k in ("limit_per_split", "shard_size")} | {"source": args.source}
        if args.path:
            data["ingest"]["path"] = args.path
    return FactoryConfig.model_validate(data)


def main(argv: list[str] | None = None) -> int:
    """Runs a command; an error the user can act on is one line on stderr and exit code 2, a bug
    keeps its traceback (exit code 1); --debug shows every traceback."""
    args = parser().parse_args(argv)
    try:
        config = load_config(args)
    except (ValidationError, ValueError, OSError) as e:
        if args.debug:
            raise
        why = validation_line(e) if isinstance(e, ValidationError) else \
            f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.filename else str(e)
        where = f" ({args.config})" if args.config and not why.startswith(str(args.config)) else ""
        print(f"distillery {args.command}: invalid configuration{where}: {why}", file=sys.stderr)
        return 2
    from flows.server import ServerError, drain_prefect, temporary_server

    started = time.time()
    on_signals(args.command, config, started)
    stop_file = Path(tempfile.gettempdir()) / f"distillery-stop-{os.getpid()}-{time.time_ns()}"
    os.environ[Interrupt.ENV] = str(stop_file)  # the workers of a local dask / ray cluster look there
    try:
        with temporary_server():  # before prefect is imported: its settings are read once, on import
            return run_command(args, config)
    except ServerError as e:
        print(f"distillery: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if INTERRUPT.is_set():  # whatever the stage ended with: the interrupt is what happened
            print(f"distillery {args.command}: {interrupted_line(config, started)}", file=sys.stderr)
            return 128 + interrupted().signum
        explained = explain(e)
        if explained is None or args.debug:
            raise
        drain_prefect()  # Prefect's last lines before ours: the error is what a user reads last
        line, code = explained
        print(f"distillery {args.command}: {line}", file=sys.stderr)
        return code
    finally:
        stop_file.unlink(missing_ok=True)


def on_signals(command: str, config: FactoryConfig, started: float) -> None:
    """The first Ctrl-C or SIGTERM stops every model request from starting (those in flight get a
    few seconds and their answers are stored), and the stage ends with one line; a second exits
    at once. Prefect's flow engine installs its own SIGTERM handler (it raises in the main thread):
    it is pointed at ours, so SIGTERM ends a run as Ctrl-C does."""

    def handler(signum, frame):
        if INTERRUPT.is_set():
            exit_now(command, config, started, signum)
        interrupt(signum)
        print(f"distillery {command}: {signal.Signals(signum).name}: no new requests; waiting a few seconds for "
              "those in flight (again: exit now)", file=sys.stderr, flush=True)
        watch_second_signal(command, config, started)
        threading.Thread(target=hard_stop, args=(command, config, started, signum), daemon=True).start()

    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def exit_now(command: str, config: FactoryConfig, started: float, signum: int) -> None:
    print(f"distillery {command}: {signal.Signals(signum).name} again: exiting now; "
          f"{interrupted_line(config, started)}", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def watch_second_signal(command: str, config: FactoryConfig, started: float) -> None:
    """Exits on the next SIGINT or SIGTERM from a thread of its own. Python runs a signal's
    handler in the main thread, and only when that thread next runs Python code: when the kernel
    delivers the signal to another thread while the main one waits on a lock (a request in
    flight), the handler would wait for that request. The C-level handler writes the signal's
    number to the wakeup fd at once, whichever thread it interrupts; this thread reads it (and
    passes every byte on to a wakeup fd set before, such as an event loop's)."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        before = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except ValueError:  # not the main thread: the handler alone will do
        os.close(read), os.close(write)
        return

    def watch():
        while True:
            for signum in os.read(read, 64):
                if before != -1:
                    try:
                        os.write(before, bytes([signum]))
                    except OSError:
                        pass
                if signum in (signal.SIGINT, signal.SIGTERM):
                    exit_now(command, config, started, signum)

    threading.Thread(target=watch, daemon=True, name="second-signal").start()


def hard_stop(command: str, config: FactoryConfig, started: float, signum: int) -> None:
    time.sleep(HARD_STOP_S)
    print(f"distillery {command}: still running {HARD_STOP_S:g} s after {signal.Signals(signum).name}: exiting now; "
          f"{interrupted_line(config, started)}", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def interrupted_line(config: FactoryConfig, started: float) -> str:
    """What an interrupted command kept, and how to go on."""
    from teacher_cache.store import count_since

    path = DataDir(config.data_dir).teacher_cache
    stored = count_since(path, started)  # read-only, waits at most a moment: the line is printed either way
    kept = f"{stored} answers received in this run are" if stored is not None else "every answer received is"
    return (f"interrupted: no further requests were sent; {kept} stored in the teacher cache ({path}); "
            "run the same command again to continue (it asks only for what is missing)")


def run_command(args: argparse.Namespace, config: FactoryConfig) -> int:
    import prefect.utilities.engine

    from flows.factory import distill, factory  # imported late: prefect is slow to import
    from flows.stages import STAGES

    if threading.current_thread() is threading.main_thread():
        prefect.utilities.engine._prefect_sigterm_handler = signal.getsignal(signal.SIGINT)  # see on_signals

    if not args.debug:
        quiet_explained_tracebacks()

    if args.command == "import-traces":
        from flows.stages import import_traces_flow

        result = import_traces_flow(file=args.file, teacher=args.teacher, source=args.source, variant=args.variant,
                                    model=args.model, id_column=args.id_column, response_column=args.response_column,
                                    reasoning_column=args.reasoning_column, config=config)
    else:
        kwargs = {"audit": True} if args.command == "verify" and args.audit else {}
        if args.command == "deploy" and not config.deploy.students:
            kwargs = {"students": DEPLOY_ALONE}
        flows = {"run": factory, "distill": distill} | STAGES
        result = flows[args.command](config=config, **kwargs)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

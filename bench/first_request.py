"""Which project files `distillery sample` passes through before its first HTTP request to the teacher.

    PYTHONPATH=$PWD .venv/bin/python bench/first_request.py [--verbose]

Starts the OpenAI wire-format test server (tests/fake_servers.py) in its own process, ingests a few
synthetic problems, then runs the CLI's `main(["sample", ...])` in this process (its temporary Prefect
server included) under `sys.settrace` / `threading.settrace`: every function call in a project file
(tests/ and bench/ aside; module and class bodies run on import are not counted) is recorded until the first
`socket.connect` to the teacher's port. Prints the files, in the order first entered, and their number;
also how many times a backend object was constructed (`teacher_for` calls) during the stage.
"""

import argparse
import inspect
import socket
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling import ROOT, start_server  # noqa: E402

SKIP = tuple(str(ROOT / d) for d in ("tests", "bench", ".venv"))


class Trace:
    """Project files entered (file -> its first function) until the first connect to `port`."""

    def __init__(self, port: int):
        self.port, self.on, self.entered, self.constructions = port, True, {}, 0
        self.connect_ex, self.connect = socket.socket.connect_ex, socket.socket.connect

    def __call__(self, frame, event, arg):
        code = frame.f_code
        if event == "call" and self.on and code.co_filename.startswith(str(ROOT)) and \
                not code.co_filename.startswith(SKIP) and code.co_flags & inspect.CO_NEWLOCALS:
            self.entered.setdefault(code.co_filename, code.co_name)
        if event == "call" and code.co_name == "teacher_for" and code.co_filename.startswith(str(ROOT)):
            self.constructions += 1
        return None

    def watch(self, real):
        def connecting(sock, address, *a):
            if isinstance(address, tuple) and len(address) >= 2 and address[1] == self.port:
                self.on = False
            return real(sock, address, *a)
        return connecting

    def __enter__(self):
        socket.socket.connect_ex, socket.socket.connect = self.watch(self.connect_ex), self.watch(self.connect)
        sys.settrace(self)
        threading.settrace(self)
        return self

    def __exit__(self, *exc):
        sys.settrace(None)
        threading.settrace(None)
        socket.socket.connect_ex, socket.socket.connect = self.connect_ex, self.connect


def sample_once(url: str, trace: Trace) -> None:
    """`distillery sample` (the CLI's main, in this process) over 8 synthetic problems in 2 shards."""
    from flows.cli import main as cli
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from tasks.ingest import ingest

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sample.yaml"
        cfg.write_text(f"data_dir: {tmp}/data\ningest: {{source: synthetic, n_problems: 8, shard_size: 4}}\n"
                       "caption: {captioner: none}\n"
                       f"sample: {{teacher: openai, model: fake, k: 1, variants: [plain], endpoint: "
                       f"{{base_urls: ['{url}']}}}}\n")
        ingest(FactoryConfig.from_yaml(cfg).ingest, DataDir(f"{tmp}/data"))
        with trace:
            assert cli(["sample", "--config", str(cfg)]) == 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    server, url = start_server(0.0)
    trace = Trace(int(url.rsplit(":", 1)[1].split("/")[0]))
    try:
        sample_once(url, trace)
    finally:
        server.kill()
    for f, fn in trace.entered.items() if args.verbose else []:
        print(f"  {Path(f).relative_to(ROOT)}  ({fn})")
    packages = {Path(f).relative_to(ROOT).parts[0] for f in trace.entered}
    print(f"project files before the first request to the teacher: {len(trace.entered)} in {len(packages)} packages")
    print(f"backend objects constructed during the stage (teacher_for calls): {trace.constructions}")


if __name__ == "__main__":
    main()

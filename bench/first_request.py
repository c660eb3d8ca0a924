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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    server, url = start_server(0.0)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    entered: dict[str, str] = {}  # file -> first function
    constructions = [0]
    state = {"on": True}

    def tracer(frame, event, arg):
        if event == "call" and state["on"]:
            f = frame.f_code.co_filename
            if f.startswith(str(ROOT)) and not f.startswith(SKIP) and frame.f_code.co_flags & inspect.CO_NEWLOCALS:
                entered.setdefault(f, frame.f_code.co_name)
        if event == "call" and frame.f_code.co_name == "teacher_for" and "tasks/teachers" in frame.f_code.co_filename:
            constructions[0] += 1
        return None

    connect = socket.socket.connect_ex, socket.socket.connect
    before: list[str] = []

    def watch(real):
        def connecting(self, address, *a):
            if state["on"] and isinstance(address, tuple) and len(address) >= 2 and address[1] == port:
                state["on"] = False
                before.extend(entered)
            return real(self, address, *a)
        return connecting

    socket.socket.connect_ex, socket.socket.connect = watch(connect[0]), watch(connect[1])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "sample.yaml"
            cfg.write_text(f"data_dir: {tmp}/data\ningest: {{source: synthetic, n_problems: 8, shard_size: 4}}\n"
                           "caption: {captioner: none}\n"
                           f"sample: {{teacher: openai, model: fake, k: 1, variants: [plain], endpoint: "
                           f"{{base_urls: ['{url}']}}}}\n")
            from flows.cli import main as cli
            from schemas.config import FactoryConfig
            from schemas.paths import DataDir
            from tasks.ingest import ingest

            ingest(FactoryConfig.from_yaml(cfg).ingest, DataDir(f"{tmp}/data"))
            sys.settrace(tracer)
            threading.settrace(tracer)
            try:
                code = cli(["sample", "--config", str(cfg)])
            finally:
                sys.settrace(None)
                threading.settrace(None)
    finally:
        server.kill()
    assert code == 0, code
    for f in before if args.verbose else []:
        print(f"  {Path(f).relative_to(ROOT)}  ({entered[f]})")
    packages = {Path(f).relative_to(ROOT).parts[0] for f in before}
    print(f"project files before the first request to the teacher: {len(before)} in {len(packages)} packages")
    print(f"backend objects constructed during the stage (teacher_for calls): {constructions[0]}")


if __name__ == "__main__":
    main()

"""`vllm` teacher: the factory runs `vllm serve MODEL` on a free loopback port for the stage.

It waits until the server answers /health, talks to it as the `openai` teacher, and stops it
(the whole process group) when the stage ends. Without the vllm command, or without a GPU,
it says so before starting anything.
"""

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from schemas.errors import InputError, StageFailed
from tasks.teachers.openai_compat import OpenAITeacher


class VllmTeacher(OpenAITeacher):
    backend = "vllm"
    default_key_env = None  # our own loopback server: a key only if the config names one

    def __init__(self, model: str, endpoint, vllm):
        super().__init__(model, endpoint)
        self.vllm = vllm
        self.base_urls = []  # known once the server is up
        self._proc: subprocess.Popen | None = None
        self._log: Path | None = None

    @classmethod
    def from_config(cls, cfg) -> "VllmTeacher":
        return cls(cfg.model, cfg.endpoint, cfg.vllm)

    def start(self) -> None:
        exe = shutil.which(self.vllm.executable)
        if exe is None:
            raise InputError(f"the vllm teacher needs the `{self.vllm.executable}` command, which is not installed "
                               "here (pip install vllm on a GPU machine), or use the `openai` teacher with the "
                               "base URL of a running vLLM server")
        if self.vllm.require_gpu and not has_gpu():
            raise InputError("the vllm teacher needs a CUDA GPU and none is visible (set sample.vllm.require_gpu: "
                               "false only for a CPU build of vLLM)")
        port = free_port()
        cmd = [exe, "serve", self.model, "--host", "127.0.0.1", "--port", str(port)]
        if self.vllm.reasoning_parser:
            cmd += ["--reasoning-parser", self.vllm.reasoning_parser]
        cmd += list(self.vllm.args)
        self._log = Path(tempfile.mkstemp(prefix="vllm-", suffix=".log")[1])
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            self._wait_healthy(url)
        except BaseException:
            self.stop()
            raise
        self.base_urls = [f"{url}/v1"]

    def _wait_healthy(self, url: str) -> None:
        deadline = time.monotonic() + self.vllm.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise StageFailed(f"vllm serve {self.model} exited with code {self._proc.returncode} before it was "
                                   f"ready; its log ends with:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"vllm serve {self.model} was not healthy after {self.vllm.startup_timeout_s:g} s; "
                           f"its log ends with:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers."""
        import os
        import signal

        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None
        self.base_urls = []

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:]) if self._log else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return shutil.which("nvidia-smi") is not None

"""The managed `vllm` teacher with a stand-in `vllm` executable that serves the OpenAI wire format:
start on a free loopback port, wait for health, sample through it, shut it down; failures are clear."""

import socket
import sys
from pathlib import Path

import pytest
from test_remote_teachers import problems

from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.paths import DataDir
from students.backends import identity, opened
from tasks.sample import sample_shard

TESTS = Path(__file__).resolve().parent

STAND_IN = f"""#!{sys.executable}
import sys, time
sys.path.insert(0, {str(TESTS)!r})
args = sys.argv[1:]
open(sys.argv[0] + ".args", "w").write(" ".join(args))
assert args[0] == "serve", args
time.sleep(0.5)  # a server takes a while to come up; the launcher must wait for /health
from fake_servers import FakeServer
from aiohttp import web
web.run_app(FakeServer("openai", reasoning="reasoning").app(), host="127.0.0.1",
            port=int(args[args.index("--port") + 1]), print=None)
"""
BROKEN = f"""#!{sys.executable}
import sys
print("ValueError: No available memory for the cache blocks.", file=sys.stderr)
sys.exit(1)
"""


def executable(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def config(exe: Path | str, **vllm) -> FactoryConfig:
    return FactoryConfig.model_validate({
        "sample": {"teacher": "vllm", "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "k": 2, "variants": ["plain"],
                   "vllm": {"executable": str(exe), "reasoning_parser": "deepseek_r1", "require_gpu": False,
                            "startup_timeout_s": 60, **vllm}},
        "arms": {"arms": ["raw"]}})


def port_open(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


def test_start_health_wait_sample_and_shutdown(tmp_path):
    exe = executable(tmp_path, "vllm", STAND_IN)
    cfg = config(exe)
    with opened(cfg.sample, cfg, DataDir(tmp_path / "data")) as teacher:
        url = teacher.teacher.teacher.base_urls[0]
        assert url.startswith("http://127.0.0.1:") and port_open(url)
        result = sample_shard(cfg.sample, problems(["q0", "q1", "q2"]), {}, teacher)
        df = result.samples
        stats = result.stats
    assert stats.new == 6, teacher.store.errors()
    assert df.height == 6 and df["reasoning"].str.starts_with("Path ").all()
    assert (df["teacher"] == identity(cfg.sample)).all() and identity(cfg.sample).startswith("vllm/")
    args = Path(f"{exe}.args").read_text().split()
    assert args[:2] == ["serve", cfg.sample.model] and args[args.index("--reasoning-parser") + 1] == "deepseek_r1"
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert not port_open(url)  # stopped when the stage ended
    assert df["cost_usd"].sum() == 0  # self-hosted: no per-token price


def test_a_failed_start_says_why(tmp_path):
    cfg = config(executable(tmp_path, "vllm", BROKEN))
    with pytest.raises(RuntimeError, match=r"exited with code 1(.|\n)*No available memory"):
        with opened(cfg.sample, cfg, DataDir(tmp_path / "data")):
            pass


def test_missing_vllm_or_gpu_is_a_clear_error(tmp_path):
    cfg = config(tmp_path / "no-such-vllm")
    with pytest.raises(InputError, match="not installed"):
        with opened(cfg.sample, cfg, DataDir(tmp_path / "data")):
            pass
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = config(executable(tmp_path, "vllm", STAND_IN), require_gpu=True)
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        with opened(cfg.sample, cfg, DataDir(tmp_path / "data")):
            pass

"""sample.batch: the OpenAI Batch API against a local server that implements its files and
batches endpoints (tests/fake_servers.py): answers enter the cache like online ones, at the
batch price; lines a batch failed or left unanswered go into a new batch alone; a run killed
after submitting resumes polling and submits nothing again."""

import json
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
import yaml
from e2e import ROOT
from fake_servers import FakeServer

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, write_table
from students.backends import close_backends
from students.runner import run_shard

K = 2
QUESTIONS = ["Which colour is the sky?", "Which colour is grass? [batchfail]", "Which colour is gold? [batchexpire]",
             "Which colour is blood?"]
SCRIPT = """
import sys
from schemas.config import FactoryConfig
from schemas.paths import DataDir
from students.runner import run_shard

cfg = FactoryConfig.from_yaml(sys.argv[1])
data = DataDir(cfg.data_dir)
run_shard("sample", cfg, data, "test/test-00000")
"""


def data_dir(tmp_path, questions) -> DataDir:
    data = DataDir(tmp_path / "data")
    rows = [dict(problem_id=f"p{i}", source="test", source_id=str(i), split="train", question=q,
                 choices=["red", "blue", "green", "gold"], answer="red", answer_index=0, answer_type="multiple_choice",
                 hint="", lecture="Colours are seen.", solution="", caption=None, image_sha=None, subject="s",
                 topic="t", category="c", grade="g") for i, q in enumerate(questions)]
    write_table(pl.DataFrame(rows, schema=SCHEMAS["problems"]), data.table("problems") / "test" / "test-00000.parquet",
                "problems")
    return data


MODELS = {"openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash"}


def config(data: DataDir, server: FakeServer) -> dict:
    model = MODELS[server.kind]
    return {"data_dir": str(data.root),
            "sample": {"teacher": server.kind, "model": model, "k": K, "variants": ["plain"], "batch": True,
                       "batch_poll_s": 0.05, "endpoint": {"base_urls": [server.url], "api_key_env": "FAKE_KEY"}},
            "prices": {model: {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}}


def sample(data: DataDir, cfg: dict):
    config_ = FactoryConfig.model_validate(cfg)
    try:
        return run_shard("sample", config_, data, "test/test-00000")
    finally:
        close_backends()


def lines_of(server: FakeServer, n: int) -> list[str]:
    """The keys the nth batch was asked for."""
    if server.kind == "gemini":
        return sorted(r["metadata"]["key"] for r in server.batches[f"batches/{n}"]["requests"])
    text = server.files[server.batches[f"batch_{n}"]["input_file_id"]].decode()
    return sorted(json.loads(line)["custom_id"] for line in text.splitlines())


@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_batch_answers_at_the_batch_price_and_only_the_missing_resubmitted(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("FAKE_KEY", "sk-batch-123456789")
    data = data_dir(tmp_path, QUESTIONS)
    with FakeServer(kind) as server:
        cfg = config(data, server)
        result = sample(data, cfg)
        assert not server.statuses  # nothing went through the online endpoint
        assert server.batch_creates == 2  # the first batch, then the failed and the expired lines alone
        first, second = lines_of(server, 1), lines_of(server, 2)
        assert len(first) == len(QUESTIONS) * K and len(second) == 2 * K and set(second) < set(first)
        assert server.repeated_successes() == {}
        df = pl.read_parquet(data.table("samples") / "**" / "*.parquet")  # what the stage wrote
        assert df.height == len(QUESTIONS) * K and result.new == df.height and result.failed == 0
        online = (df["prompt_tokens"] * 0.15 + df["completion_tokens"] * 0.6) / 1e6
        assert (df["cost_usd"] - online * 0.5).abs().max() < 1e-12  # the batch price: half the online one
        assert abs(result.cost_usd - df["cost_usd"].sum()) < 1e-12
        again = sample(data, cfg)
        assert server.batch_creates == 2 and again.cached == df.height and again.new == 0


@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_a_run_killed_while_its_batch_runs_resumes_polling_and_submits_nothing_again(tmp_path, kind):
    data = data_dir(tmp_path, QUESTIONS[:1] + QUESTIONS[3:])
    with FakeServer(kind) as server:
        server.batch_hold = True
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(config(data, server)))
        env = {"FAKE_KEY": "sk-batch-123456789", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any(b["polls"] >= 2 for b in server.batches.values()):
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert server.batch_creates == 1
        server.batch_hold = False
        rerun = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert server.batch_creates == 1  # polled the batch the killed run submitted
        samples = pl.read_parquet(data.table("samples") / "**" / "*.parquet")
        assert samples.height == 2 * K and server.repeated_successes() == {}


@pytest.mark.parametrize("teacher", ["vllm", "local"])
def test_batch_needs_a_teacher_with_a_batch_api(teacher):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="batch needs the openai or gemini teacher"):
        FactoryConfig.model_validate({"sample": {"teacher": teacher, "batch": True}})

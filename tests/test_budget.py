"""endpoint.budget_usd, the spending cap, through the real CLI against a local counting server with prices.

`sample` with a cap worth a fraction of its requests stops sending before the next request group could
pass the cap, ends with one line saying what was spent, and has stored every answer it received; the
spend (every stored answer at the configured price) stays under the cap and within one request group of
it. A re-run with a higher cap asks only the rest: no answer is paid twice.
"""

import sqlite3
import subprocess

import pytest
import yaml
from e2e import CLI, ROOT, prefect_server
from fake_servers import FakeServer

from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.paths import DataDir
from students.backends import budget
from students.runner import run_shard
from tasks.ingest import ingest

pytestmark = pytest.mark.slow
KEY = "sk-budget-0123456789"
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}  # dear, so that a few requests cost dollars
MAX_NEW = 64


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect"), FAKE_KEY=KEY) as e:
        yield e


def config(data: DataDir, url: str, cap: float | None) -> dict:
    return {"data_dir": str(data.root), "ingest": {"source": "synthetic", "n_problems": 30, "shard_size": 10},
            "prices": {"fake-priced": PRICE},
            "sample": {"teacher": "openai", "model": "fake-priced", "k": 2, "variants": ["plain"],
                       "splits": ["train", "val", "test"], "max_new_tokens": MAX_NEW,
                       "endpoint": {"base_urls": [url], "concurrency": 2, "use_n": False, "api_key_env": "FAKE_KEY",
                                    "budget_usd": cap}}}


def spend(data: DataDir) -> tuple[int, float, float]:
    """(answers stored, what they cost at PRICE, the dearest one's prompt at PRICE plus MAX_NEW at PRICE)."""
    with sqlite3.connect(data.teacher_cache) as db:
        rows = db.execute("SELECT prompt_tokens, completion_tokens FROM responses").fetchall()
    cost = sum(p * PRICE["input_per_mtok"] + c * PRICE["output_per_mtok"] for p, c in rows) / 1e6
    group = (max(p for p, _ in rows) * PRICE["input_per_mtok"] + MAX_NEW * PRICE["output_per_mtok"]) / 1e6
    return len(rows), cost, group


def test_sample_stops_at_the_cap_and_a_higher_cap_asks_only_the_rest(tmp_path, env):
    data, cap = DataDir(tmp_path / "data"), 2.0
    with FakeServer("openai", latency=0.05) as server:
        path = tmp_path / "capped.yaml"
        path.write_text(yaml.safe_dump(config(data, server.url, cap)))
        cfg = FactoryConfig.model_validate(config(data, server.url, cap))
        ingest(cfg.ingest, data)
        for shard in data.shards():
            run_shard("caption", cfg, data, shard)
        ran = subprocess.run([CLI, "sample", "--config", str(path)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        out = ran.stdout + ran.stderr
        assert ran.returncode == 2 and "Traceback" not in out, out[-3000:]
        line = [x for x in out.splitlines() if x.startswith("distillery sample:")][-1]
        assert "spending cap reached" in line and "budget_usd is $2.0000" in line and "run the command again" in line
        said = float(line.split("spending cap reached: $")[1].split(" ")[0])
        kept, cost, group = spend(data)
        answered = sum(server.successes.values())
        assert 0 < kept == answered < 60  # everything received is stored; the cap left requests unasked
        assert abs(said - cost) < 1e-3 and cost <= cap and cap - cost < group, (said, cost, group)  # within one group

        path.write_text(yaml.safe_dump(config(data, server.url, 1000.0)))
        rerun = subprocess.run([CLI, "sample", "--config", str(path)], env=env, cwd=ROOT, capture_output=True,
                               text=True, timeout=300)
        assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    assert not server.repeated_successes(), "an answer was paid twice"
    assert sum(server.successes.values()) == spend(data)[0] == 60


def test_a_cap_needs_a_price_and_no_batch(tmp_path):
    cfg = FactoryConfig.model_validate(config(DataDir(tmp_path), "http://127.0.0.1:9", 1.0) | {"prices": {}})
    with pytest.raises(InputError, match="budget_usd is set for openai/fake-priced, whose price is unknown"):
        budget(cfg.sample, cfg)
    with pytest.raises(ValueError, match="budget_usd caps requests sent one by one"):
        FactoryConfig.model_validate({"sample": {"teacher": "openai", "model": "gpt-4o", "batch": True,
                                                 "endpoint": {"budget_usd": 1.0}}})

"""endpoint.budget_usd, the spending cap, through the real CLI against a local counting server with prices.

`sample` with a cap worth a fraction of its requests stops sending before the next request group could
pass the cap, ends with one line saying what was spent, and has stored every answer it received; the
spend (every stored answer at the configured price) stays under the cap and within one request group of
it. A re-run with a higher cap asks only the rest: no answer is paid twice.
"""

import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml
from e2e import CLI, ROOT, prefect_server
from fake_servers import FakeServer

from schemas.config import EndpointConfig, FactoryConfig, ModelPrice
from schemas.errors import InputError
from schemas.paths import DataDir
from students.backends import budget
from students.runner import run_shard
from tasks.ingest import ingest
from tasks.teachers.budget import IMAGE_TOKENS, Budget, BudgetReached
from tasks.teachers.engine import RequestEngine
from tasks.teachers.openai_compat import OpenAITeacher
from teacher_cache import CachedTeacher, CacheStore
from teacher_cache.types import Completion, ImageRef, Request, SamplingParams

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


def req(text: str, images: int = 0, n: int = 1, max_new: int = MAX_NEW) -> list[Request]:
    pictures = tuple(ImageRef(f"{i:064x}", Path("/nonexistent.png")) for i in range(images))
    return [Request((("user", text),), SamplingParams(0.7, 1.0, max_new), i, pictures) for i in range(n)]


def usd(prompt: int, out: int) -> float:
    return (prompt * PRICE["input_per_mtok"] + out * PRICE["output_per_mtok"]) / 1e6


def test_a_group_reserves_its_most_and_counts_what_it_cost():
    """Prompt from characters (plus a picture's most), max_new_tokens a path; a group the server may have
    charged for without an answer counts at its reservation, a refused one at nothing, an answer at its
    tokens (a prompt bigger than estimated raises later estimates), one reporting no tokens at its reservation."""
    b = Budget(10.0, ModelPrice(**PRICE))
    text = "x" * 400  # 100 tokens by characters
    assert b.estimate(req(text, n=2)) == pytest.approx(usd(101, 2 * MAX_NEW))
    assert b.estimate(req(text, images=1)) == pytest.approx(usd(101 + IMAGE_TOKENS, MAX_NEW))
    for billed, charged in ((True, True), (False, False)):  # no reply in time / an HTTP error
        before, most = b.spent, b.reserve(req(text))
        b.settle(req(text), most, None, billed)
        assert b.spent - before == pytest.approx(most if charged else 0.0) and b.pending == 0 and b.reserved == 0.0
    before, most = b.spent, b.reserve(req(text))
    b.settle(req(text), most, [Completion("a", None, "stop", 303, 10, 0.0)], False)  # 3x the estimated prompt
    assert b.spent - before == pytest.approx(usd(303, 10)) and b.estimate(req(text)) == pytest.approx(usd(303, MAX_NEW))
    before, most = b.spent, b.reserve(req(text))
    b.settle(req(text), most, [Completion("a", None, "stop", 0, 0, 0.0)], False)  # no usage reported
    assert b.spent - before == pytest.approx(most)


def test_the_cap_holds_the_next_group_and_names_the_share():
    b = Budget(1.0, ModelPrice(**PRICE), shares=4)
    group = req("y" * 400)
    with pytest.raises(BudgetReached, match=r"budget_usd is \$4.0000 \(this worker's share of 4: \$1.0000\)"):
        while True:
            b.reserve(group)


def test_a_timed_out_request_counts_at_its_reservation_and_stops_the_stage(tmp_path):
    """Over HTTP: a request that got no answer in time may have been billed. With a cap worth one such
    request, its retry is not sent: the stage ends at the cap, the server asked once."""
    cap = usd(len("[hang] " + "z" * 400) // 4 + 1, MAX_NEW) * 1.5  # one reservation fits, two do not
    with FakeServer("openai", hang_s=3.0) as server:
        ep = EndpointConfig(base_urls=[server.url], timeout_s=0.5, max_attempts=3, backoff_s=0.05)
        engine = RequestEngine(OpenAITeacher("fake-priced", ep), budget=Budget(cap, ModelPrice(**PRICE)))
        t = CachedTeacher(engine, CacheStore(tmp_path / "c.sqlite"))
        with pytest.raises(BudgetReached, match="spending cap reached"):
            t.complete(req("[hang] " + "z" * 400))
        t.close()
    assert server.attempts_with("[hang]") == 1


def test_openings_of_one_backend_share_its_cap(tmp_path):
    """The judges are opened once per student: every opening in a run draws on one cap."""
    cfg = FactoryConfig.model_validate(config(DataDir(tmp_path), "http://127.0.0.1:9", 3.0) | {"run": "shared-cap"})
    assert budget(cfg.sample, cfg) is budget(cfg.sample, cfg)
    other = cfg.model_copy(update={"run": "another-run"})
    assert budget(other.sample, other) is not budget(cfg.sample, cfg)


@pytest.mark.parametrize("bad, why", [({"runner": {"kind": "ray"}}, "under runner ray"),
                                      ({"sample": {"teacher": "local", "endpoint": {"budget_usd": 1.0}}},
                                       "costs no money per token")])
def test_a_cap_where_it_would_not_hold_is_refused(tmp_path, bad, why):
    data = config(DataDir(tmp_path), "http://127.0.0.1:9", 1.0)
    with pytest.raises(ValueError, match=why):
        FactoryConfig.model_validate(data | bad)

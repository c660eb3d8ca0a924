"""`distillery run` end to end on a tiny random Llama that uses the embedded tokenizer."""

import json
import re
import subprocess
import sys

import polars as pl
import pytest
from e2e import ROOT, prefect_env, run_cli, tiny_config
from fake_servers import FakeServer

from schemas.tables import SCHEMAS

TABLES = ["problems", "rejects", "captions", "samples", "verdicts", "selected", "arms", "evals"]


@pytest.fixture(scope="module")
def factory_run(tmp_path_factory, tiny_model):
    """Two runs of one tiny config, with a zero-shot reference model (H3.6) and a reasoning judge
    served by a local OpenAI-compatible test server."""
    root = tmp_path_factory.mktemp("factory")
    env = prefect_env(root / "prefect", own_server=True)
    with FakeServer("openai") as server:
        endpoint = {"base_urls": [server.url], "max_attempts": 2, "backoff_s": 0.05}
        cfg = tiny_config(root / "tiny.yaml", tiny_model, root / "data", run="default",  # the README's run name
                          reference=[{"name": "big", "teacher": "openai", "model": "gpt-4o-mini", "endpoint": endpoint}],
                          evaluate={"judge": {"teacher": "openai", "model": "judge", "endpoint": endpoint}})
        first, first_log = run_cli(["run", "--config", str(cfg)], env)  # a brand-new PREFECT_HOME, no PREFECT_API_URL
        asked = sum(server.attempts.values())
        env = prefect_env(root / "prefect")  # from here on the session's server (start-up is tested above)
        second, second_log = run_cli(["run", "--config", str(cfg)], env)
        asked_again = sum(server.attempts.values()) - asked
    return dict(root=root, cfg=cfg, env=env, first=first, second=second, first_log=first_log, second_log=second_log,
                asked=asked, asked_again=asked_again)


@pytest.mark.slow
def test_every_stage_ran_and_wrote_its_declared_schema(factory_run):
    data = factory_run["root"] / "data"
    for table in TABLES:
        lazy = pl.scan_parquet(str(data / table / "**" / "*.parquet"))
        assert lazy.collect_schema() == pl.Schema(SCHEMAS[table]), table
        if table != "rejects":
            assert lazy.select(pl.len()).collect().item() > 0, table
    first = factory_run["first"]
    train_problems = pl.read_parquet(data / "problems" / "**" / "*.parquet").filter(pl.col("split") == "train").height
    assert first["sample"]["new"] == train_problems * 2 * 2  # k=2, plain + lecture
    assert first["verify"]["verdicts"] == first["sample"]["new"]
    report = (data / "reports" / "default" / "report.md").read_text()
    assert "| raw-lora | raw | lora | 0 |" in report and "| base | base | none |" in report
    summary = json.loads((data / "reports" / "default" / "summary.json").read_text())
    assert {s["student"] for s in summary["students"]} >= {"base", "raw-lora", "raw-prompt_tuning", "answer_only-lora"}


@pytest.mark.slow
def test_h36_reference_model_and_judged_reasoning_through_the_local_server(factory_run):
    data = factory_run["root"] / "data"
    held = pl.read_parquet(data / "problems" / "**" / "*.parquet").filter(pl.col("split").is_in(["val", "test"]))
    ref = factory_run["first"]["evaluate"]["reference:big"]
    asked = pl.read_parquet(data / "evals" / "default" / "reference-big.parquet")
    assert set(asked["split"]) == {"val", "test"} and asked.n_unique(["problem_id", "variant"]) == asked.height
    assert ref["new_requests"] == asked.height >= held.height and ref["failed"] == 0  # one per problem and context
    assert factory_run["asked"] > held.height and factory_run["asked_again"] == 0  # the re-run asked nothing
    report = (data / "reports" / "default" / "report.md").read_text()
    assert "## H3.6: the best arm against zero-shot reference models" in report
    row = next(line for line in report.splitlines() if line.startswith("| reference:big | ") and "zero-shot" not in line)
    per_answer = row.split("|")[-2].strip()
    assert per_answer.startswith("$") and float(per_answer[1:]) > 0  # priced: gpt-4o-mini is in the price table
    assert "| H3.6 |" in report
    rates = report.split("## Answers counted wrong")[1].split("\n## ")[0]  # per student: failed, truncated, ...
    assert "| student | n | failed | truncated | ungradable | unanswered |" in rates and "| base |" in rates
    evals = pl.read_parquet(data / "evals" / "default" / "*.parquet")
    judged = evals.filter(pl.col("reasoning_judge").is_not_null())
    assert judged.height > 0 and set(judged["reasoning_judge"]) == {"openai/judge"}
    assert set(judged["prompt_style"]) == {"cot"} and set(judged["decoding"]) == {"greedy"}
    assert (data / "reports" / "default" / "report.html").read_text().startswith("<!doctype html>")


@pytest.mark.slow
def test_a_healthy_run_logs_no_traceback_and_times_every_stage(factory_run):
    for log in (factory_run["first_log"], factory_run["second_log"]):
        assert "Traceback" not in log and "Error logging to API" not in log and "telemetry" not in log.lower()
    first = factory_run["first"]
    assert set(first["wall_s"]) == set(first) - {"wall_s", "peak_rss_gib"}
    assert all(v >= 0 for v in first["wall_s"].values())
    assert re.search(r"train raw-lora: (\d+)/\1 steps \(100%\)", factory_run["first_log"])  # progress in the run log


@pytest.mark.slow
def test_second_run_asks_the_teacher_for_nothing(factory_run):
    first, second = factory_run["first"]["sample"], factory_run["second"]["sample"]
    assert (second["cached"], second["new"], second["failed"], second["tokens_out"]) == (first["new"], 0, 0, 0)
    assert first["tokens_out"] > 0 and first["cost_usd"] == 0.0  # the local teacher costs nothing per token
    assert f"{first['new']} requests served from the cache, 0 new" in factory_run["second_log"]
    assert all(v.endswith("(reused)") or v == "skipped" for v in factory_run["second"]["train"].values())


@pytest.mark.slow
def test_raising_k_asks_only_for_the_missing_samples(factory_run, tiny_model):
    root = factory_run["root"]
    cfg = tiny_config(root / "k3.yaml", tiny_model, root / "data", run="default", sample={"k": 3})
    out, _ = run_cli(["sample", "--config", str(cfg)], factory_run["env"])
    before = factory_run["first"]["sample"]["new"]
    assert (out["cached"], out["new"], out["failed"]) == (before, before // 2, 0)
    samples = pl.read_parquet(root / "data" / "samples" / "**" / "*.parquet")
    assert samples.height == before * 3 // 2 and samples["sample_id"].n_unique() == samples.height


@pytest.mark.slow
def test_readme_polars_examples_run_as_written(factory_run, tmp_path):
    """Every python block of the README, run from a directory whose data/ is the factory's."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert len(blocks) >= 2
    (tmp_path / "data").symlink_to(factory_run["root"] / "data")
    for code in blocks:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{code}\n{proc.stderr[-2000:]}"
        assert proc.stdout.strip()


@pytest.mark.slow
def test_cli_ingests_a_scienceqa_directory(tmp_path):
    from scienceqa_fixture import write_release_layout

    layout = write_release_layout(tmp_path / "sqa")
    out, _ = run_cli(["ingest", "--source", "scienceqa", "--path", str(layout), "--data-dir", str(tmp_path / "data")],
                     prefect_env(tmp_path / "prefect"))
    assert out["problems"] == 3 and out["rejects"] == {"answer_index_out_of_range": 1, "malformed_row": 1}
    problems = pl.read_parquet(tmp_path / "data" / "problems" / "**" / "*.parquet")
    assert problems["lecture"].str.len_chars().min() > 0 and problems["caption"].null_count() == 1


def test_cli_rejects_an_unknown_config_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("sample: {kk: 1}\n")
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "sample", "--config", str(tmp_path / "bad.yaml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "kk" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_rerun_skips_the_verify_select_and_arms_work_whose_inputs_did_not_change(factory_run):
    files = len(list((factory_run["root"] / "data" / "samples").rglob("*.parquet")))
    first, second = factory_run["first"], factory_run["second"]
    assert first["verify"]["unchanged_files"] == 0 and first["arms"]["unchanged"] is False
    assert second["verify"]["unchanged_files"] == second["select"]["unchanged_files"] == files
    assert second["arms"]["unchanged"] is True and second["arms"]["rows"] == first["arms"]["rows"]
    assert "unchanged since the last run, skipped" in factory_run["second_log"]

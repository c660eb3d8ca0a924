"""`distillery distill`: two rounds on a tiny config through the real CLI and a Prefect server;
round 2's teacher is round 1's best student, cached under its own identity."""

import polars as pl
import pytest
from e2e import prefect_env, run_cli, tiny_config

from tasks.sample import teacher_dir


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("rounds")
    env = prefect_env(root / "prefect")
    cfg = tiny_config(root / "rounds.yaml", tiny_model, root / "data", run="loop", rounds=2,
                      ingest={"n_problems": 12}, sample={"k": 2, "variants": ["plain"]},
                      arms={"arms": ["raw", "teacher_answer"]}, train={"methods": ["lora"]},
                      evaluate={"baseline": False})
    first, _ = run_cli(["distill", "--config", str(cfg)], env)
    again, log = run_cli(["distill", "--config", str(cfg)], env)
    return dict(root=root, first=first, again=again, log=log)


@pytest.mark.slow
def test_round_two_samples_the_round_one_student_under_its_own_identity(two_rounds):
    data = two_rounds["root"] / "data"
    r1, r2 = two_rounds["first"]["rounds"]
    assert (r1["run"], r2["run"]) == ("loop-r1", "loop-r2")
    assert r1["teacher"].startswith("local/") and r2["teacher"].startswith(f"student/loop-r1/{r1['best']}@")
    train = pl.read_parquet(data / "problems" / "**" / "*.parquet").filter(pl.col("split") == "train").height
    assert r1["new_requests"] == r2["new_requests"] == train * 2  # k=2, plain
    samples = pl.read_parquet(data / "samples" / teacher_dir(r2["teacher"]) / "**" / "*.parquet")
    assert set(samples["teacher"]) == {r2["teacher"]} and samples.height == train * 2
    assert (data / "students" / "loop-r2" / f"{r2['best']}" / "train_meta.json").exists()
    rounds_md = (data / "reports" / "loop" / "rounds.md").read_text()
    assert "| 1 | loop-r1 |" in rounds_md and "| 2 | loop-r2 |" in rounds_md


@pytest.mark.slow
def test_a_distill_rerun_asks_no_teacher_and_trains_nothing(two_rounds):
    again = two_rounds["again"]["rounds"]
    assert [r["new_requests"] for r in again] == [0, 0]
    assert [r["teacher"] for r in again] == [r["teacher"] for r in two_rounds["first"]["rounds"]]
    assert "reused" in two_rounds["log"]

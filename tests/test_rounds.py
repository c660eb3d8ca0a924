"""`distillery distill`: two rounds on a tiny config through the real CLI and a Prefect server;
round 2's teacher is round 1's best student, cached under its own identity; with vlm students
(the tiny random LLaVA), round 2's teacher is shown each problem's picture."""

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


@pytest.fixture(scope="module")
def vlm_rounds(tmp_path_factory, tiny_model, tiny_vlm):
    """Two rounds whose students are the tiny random LLaVA: round 1's teacher is the tiny text Llama, round 2's
    the round-1 vlm student shown each problem's picture. As small as it runs: 8 problems, one path each."""
    root = tmp_path_factory.mktemp("vlm_rounds")
    env = prefect_env(root / "prefect")
    cfg = tiny_config(root / "vlm-rounds.yaml", tiny_model, root / "data", run="vloop", rounds=2,
                      ingest={"n_problems": 8}, sample={"k": 1, "variants": ["plain"], "max_new_tokens": 8},
                      arms={"arms": ["raw"]}, evaluate={"baseline": False, "max_new_tokens": 4},
                      train={"model": tiny_vlm, "student": "vlm", "methods": ["lora"], "max_length": 256})
    first, _ = run_cli(["distill", "--config", str(cfg)], env)
    again, _ = run_cli(["distill", "--config", str(cfg)], env)
    return dict(root=root, cfg=cfg, first=first, again=again)


@pytest.mark.slow
def test_vlm_round_two_is_taught_by_the_round_one_vlm_student_shown_each_picture(vlm_rounds):
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from schemas.tables import read_table
    from students.rounds import round_config
    from tasks.sample import build_requests

    data = DataDir(vlm_rounds["root"] / "data")
    r1, r2 = vlm_rounds["first"]["rounds"]
    assert r1["teacher"].startswith("local/") and r2["teacher"].startswith(f"student/vloop-r1/{r1['best']}@")
    samples = pl.read_parquet(data.root / "samples" / teacher_dir(r2["teacher"]) / "**" / "*.parquet")
    problems = read_table(data.table("problems"), "problems")
    train = problems.filter(pl.col("split") == "train")
    assert set(samples["teacher"]) == {r2["teacher"]} and samples.height == train.height == r2["new_requests"]
    # each stored answer's cache key is that of a request carrying its problem's picture (by content hash)
    cfg = round_config(FactoryConfig.from_yaml(vlm_rounds["cfg"]), 2, data.student("vloop-r1", r1["best"]))
    assert not cfg.sample.captions  # its students trained on the picture alone (train.captions false)
    items, _ = build_requests(cfg.sample, train, {}, data.image, uncaptioned=True)
    assert all(len(r.images) == 1 and r.images[0].path == data.image(p["image_sha"]) for p, _, r in items)
    captioned, _ = build_requests(cfg.sample, train, data.captions(cfg.caption.captioner), data.image)
    assert {r.key("t") for _, _, r in items}.isdisjoint(r.key("t") for _, _, r in captioned)  # captions were there
    assert set(samples["request_key"]) == {r.key(r2["teacher"]) for _, _, r in items}
    assert [r["new_requests"] for r in vlm_rounds["again"]["rounds"]] == [0, 0]


@pytest.mark.slow
def test_vlm_student_teacher_shows_the_model_each_requests_picture(vlm_rounds, tiny_vlm):
    """The round-1 vlm student as `student` teacher: its vision tower receives exactly the processor's
    pixels of the data directory's pictures the requests name; k paths of a request share one prefill."""
    import torch

    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from schemas.tables import read_table
    from students.backends import teacher_for
    from students.rounds import round_config
    from students.vlm import image_of, load_processor
    from tasks.sample import build_requests

    data = DataDir(vlm_rounds["root"] / "data")
    r1 = vlm_rounds["first"]["rounds"][0]
    cfg = round_config(FactoryConfig.from_yaml(vlm_rounds["cfg"]), 2, data.student("vloop-r1", r1["best"]))
    problems = read_table(data.table("problems"), "problems").filter(pl.col("split") == "train").head(2)
    items, _ = build_requests(cfg.sample.model_copy(update={"k": 2}), problems, {}, data.image)
    teacher = teacher_for(cfg.sample)
    seen = []
    hook = teacher._load()[1].model.vision_tower.register_forward_hook(lambda m, a, out: seen.append(a[0].clone()))
    try:
        got = teacher.complete([r for _, _, r in items])
    finally:
        hook.remove()
    assert len(got) == 4 and all(c.completion_tokens > 0 and c.prompt_tokens > 16 for c in got)  # 16 image tokens
    pictures = [image_of(data, sha) for sha in problems["image_sha"]]
    expected = load_processor(tiny_vlm).image_processor(pictures, return_tensors="pt")["pixel_values"]
    assert len(seen) == 1 and torch.equal(seen[0], expected)

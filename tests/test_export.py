"""export: every arm loads back with datasets and polars, the ShareGPT file follows
LLaMA-Factory's documented sharegpt layout, and the dataset card states what the arm is."""

import hashlib
import json
import shutil

import datasets
import polars as pl
import pytest

from schemas.config import FactoryConfig, SyntheticIngest
from schemas.paths import DataDir
from schemas.tables import read_table
from students.backends import arms_teacher
from students.runner import run_shard
from tasks.arms import run_arms
from tasks.export import run_export
from tasks.import_traces import ImportSettings, import_traces
from tasks.ingest import ingest
from tasks.prompts import LETTERS, answer_sentence
from teacher_cache.prices import price_for

ARMS = ["raw", "teacher_cot", "teacher_lecture", "mistakes"]


def teacher_traces(problems: pl.DataFrame) -> list[dict]:
    """Per training problem and variant: one right and one wrong answer, with a chain of thought."""
    rows = []
    for p in problems.filter(pl.col("split") == "train").iter_rows(named=True):
        wrong = (f"The answer is ({LETTERS[(p['answer_index'] + 1) % len(p['choices'])]})." if p["choices"]
                 else "The answer is 123456789.")
        for variant in ("plain", "lecture"):
            rows.append({"source_id": p["source_id"], "variant": variant, "completion_tokens": 300, "prompt_tokens": 2000,
                         "response": f"<think>Look at {p['question'][:30]}.</think>{answer_sentence(p)}"})
            rows.append({"source_id": p["source_id"], "variant": variant, "completion_tokens": 9,
                         "prompt_tokens": 2000, "response": wrong})
    return rows


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = DataDir(root / "data")
    ingest(SyntheticIngest(n_problems=24), data)
    traces = root / "traces.jsonl"
    traces.write_text("\n".join(json.dumps(r) for r in teacher_traces(read_table(data.table("problems"), "problems"))))
    import_traces(data, traces, ImportSettings("gpt-4o", "synthetic", model="gpt-4o-mini"),
                  price=price_for("import", "gpt-4o-mini", {}))
    cfg = FactoryConfig(data_dir=str(data.root), arms={"arms": ARMS, "teacher": "gpt-4o"})
    for f in data.sample_files():
        run_shard("verify", cfg, data, f)
        run_shard("select", cfg, data, f)
    run_arms(cfg, data, arms_teacher(cfg))
    return cfg, data, run_export(cfg, data, arms_teacher(cfg))


def test_hf_export_loads_back_with_images(exported):
    cfg, data, counts = exported
    for arm in ARMS:
        rows = pl.read_parquet(data.arm(arm) / "train.parquet")
        ds = datasets.load_from_disk(str(data.table("exports") / arm / "hf"))
        assert ds.num_rows == rows.height == counts[arm] > 0
        assert ds["completion"] == rows["completion"].to_list() and ds["prompt"] == rows["prompt"].to_list()
        first = rows["image_sha"].is_not_null().arg_max()  # a row with an image decodes to a picture
        assert ds[first]["images"][0].size[0] > 0 and len(ds[first]["images"]) == 1
        raw = ds.cast_column("images", datasets.Sequence(datasets.Image(decode=False)))["images"]
        shas = [hashlib.sha256(x[0]["bytes"]).hexdigest() if x else None for x in raw]
        assert shas == rows["image_sha"].to_list()  # the PNG itself travels with the dataset, byte for byte


def test_trl_parquet_loads_with_polars_and_datasets(exported):
    cfg, data, _ = exported
    path = data.table("exports") / "teacher_cot" / "trl.parquet"
    df = pl.read_parquet(path)
    arm = pl.read_parquet(data.arm("teacher_cot") / "train.parquet")
    assert df["prompt"].to_list() == arm["prompt"].to_list() and df["completion"].to_list() == arm["completion"].to_list()
    assert df["prompt"][0][0]["role"] == "user" and df["completion"][0][0]["role"] == "assistant"
    assert df["completion"][0][0]["content"].startswith("<think>\nLook at")
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert ds.num_rows == df.height and ds.features["images"].feature == datasets.Image()  # decoded as images


def check_llamafactory_sharegpt(folder):
    """LLaMA-Factory data/README.md, "Sharegpt Format": a JSON list of objects whose `conversations`
    alternate human (odd positions) and gpt (even), each {from, value}; multimodal rows list their
    image paths in `images`, one `<image>` tag each; dataset_info.json registers the file with
    formatting sharegpt and maps messages -> conversations, images -> images."""
    info = json.loads((folder / "dataset_info.json").read_text())
    (entry,) = info.values()
    assert entry["formatting"] == "sharegpt" and entry["columns"]["messages"] == "conversations"
    assert entry["columns"]["images"] == "images"
    records = json.loads((folder / entry["file_name"]).read_text())
    assert isinstance(records, list) and records
    for r in records:
        turns = r["conversations"]
        assert all(set(t) == {"from", "value"} and isinstance(t["value"], str) for t in turns)
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) and len(turns) % 2 == 0
        assert sum(t["value"].count("<image>") for t in turns) == len(r["images"])
        for image in r["images"]:  # relative to dataset_dir, which LLaMA-Factory uses as the media dir
            assert (folder / image).is_file()
    return records


def test_sharegpt_matches_llamafactory_layout(exported):
    cfg, data, _ = exported
    for arm in ARMS:
        folder = data.table("exports") / arm / "sharegpt"
        records = check_llamafactory_sharegpt(folder)
        rows = pl.read_parquet(data.arm(arm) / "train.parquet")
        assert [r["conversations"][1]["value"] for r in records] == [c[0]["content"] for c in rows["completion"]]
        assert sum(bool(r["images"]) for r in records) == rows["image_sha"].is_not_null().sum() > 0
        flat = pl.read_json(folder / "data.json")  # polars reads it too
        assert flat.height == rows.height and flat.columns == ["conversations", "images"]


def test_dataset_card_has_counts_costs_pass_at_k_and_config(exported):
    cfg, data, counts = exported
    text = (data.table("exports") / "teacher_cot" / "README.md").read_text()
    selected = read_table(data.table("selected"), "selected").filter(pl.col("variant") == "plain")
    spent = read_table(data.table("samples"), "samples").filter(pl.col("variant") == "plain")["cost_usd"].sum()
    assert text.startswith("---\n") and "pretty_name: distillery teacher_cot" in text
    assert f"examples: {counts['teacher_cot']} from" in text
    assert f"pass@1 {selected['pass_at_1'].mean():.3f}, pass@k {selected['pass_at_k'].mean():.3f}" in text
    assert f"${spent:.4f}" in text and spent > 0
    assert "teacher: gpt-4o" in text and "policy: shortest_correct" in text  # the config, as YAML
    assert "no teacher cost" in (data.table("exports") / "raw" / "README.md").read_text()


def test_failed_export_keeps_the_previous_one(exported, tmp_path):
    cfg, data, _ = exported
    before = (data.table("exports") / "raw" / "sharegpt" / "data.json").read_text()
    sha = pl.read_parquet(data.arm("raw") / "train.parquet")["image_sha"].drop_nulls()[0]
    moved = tmp_path / "image.png"
    shutil.move(data.image(sha), moved)
    try:
        with pytest.raises(FileNotFoundError):
            run_export(cfg.model_copy(update={"arms": cfg.arms.model_copy(update={"arms": ["raw"]})}), data,
                       arms_teacher(cfg))
    finally:
        shutil.move(moved, data.image(sha))
    assert (data.table("exports") / "raw" / "sharegpt" / "data.json").read_text() == before
    assert not [p for p in data.table("exports").iterdir() if p.name.startswith(".")]  # no temp dir left


def test_push_without_a_token_fails_before_any_work(exported, monkeypatch):
    cfg, data, _ = exported
    monkeypatch.delenv("HF_TOKEN", raising=False)
    pushing = cfg.model_copy(update={"export": cfg.export.model_copy(update={"push_to_hub": "me/distilled"})})
    stamp = (data.table("exports") / "raw" / "README.md").stat().st_mtime_ns
    with pytest.raises(ValueError, match="no token: set HF_TOKEN"):
        run_export(pushing, data, arms_teacher(pushing))
    assert (data.table("exports") / "raw" / "README.md").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_push_to_hub_over_http(exported, tmp_path):
    """`HF_TOKEN=... distillery export` with push_to_hub set, against a loopback hub (tests/fake_hub.py):
    each arm lands as a config of one dataset repo, its rows intact, its card beside it."""
    import io

    import yaml
    from e2e import prefect_env, run_cli
    from fake_hub import FakeHub

    cfg, data, _ = exported
    pushed = cfg.model_dump() | {"export": {"push_to_hub": "me/distilled", "formats": ["sharegpt"]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(pushed))
    with FakeHub(token="hf_secret_token_123") as hub:
        env = prefect_env(tmp_path / "prefect", HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
                          HF_TOKEN="hf_secret_token_123")
        out, log = run_cli(["export", "--config", str(tmp_path / "c.yaml")], env)
    repo = hub.repos["me/distilled"]
    assert repo["private"] and hub.unauthorised == 0 and "hf_secret_token_123" not in log
    for arm in ARMS:
        (shard,) = [p for p in repo["files"] if p.startswith(f"{arm}/train-")]
        got = pl.read_parquet(io.BytesIO(repo["files"][shard]))
        rows = pl.read_parquet(data.arm(arm) / "train.parquet")
        assert got["completion"].to_list() == rows["completion"].to_list() and out[arm] == rows.height
        assert repo["files"][f"cards/{arm}.md"].decode() == (data.table("exports") / arm / "README.md").read_text()
    readme = yaml.safe_load(repo["files"]["README.md"].decode().split("---")[1])
    assert sorted(c["config_name"] for c in readme["configs"]) == sorted(ARMS)

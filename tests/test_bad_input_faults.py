"""The bad-input corpus, continued (issue 20's probes): faults users hit, through the real CLI, each
with its expected ending, under the corpus's contract (tests/test_bad_input.py): exit code 2 with one
line and no traceback, or a `rejects` row with its reason; every parquet loads afterwards and what
was sampled before is kept.

Five probes need a process of their own and live beside it: one Ctrl-C, two Ctrl-Cs and the re-run
after one (tests/test_interrupts.py), a full disk and an exhausted quota (tests/test_storage_quota.py).
"""

import json
import math
import shutil
import sqlite3
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml
from e2e import CLI, ROOT
from fake_servers import FakeServer
from test_bad_input import (  # noqa: F401  (api_env, sampled: the corpus's fixtures)
    Case,
    Ran,
    api_env,
    base_config,
    clear_error,
    imported,
    ingest_sqa,
    jsonl,
    parquet_files_load,
    sampled,
)

from schemas.paths import DataDir
from schemas.tables import read_table

pytestmark = pytest.mark.slow
ELSEWHERE = 5  # the probes in test_interrupts.py and test_storage_quota.py
CASES = {}


def case(fn):
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


def run(c: Case, *args: str, **env: str) -> Ran:
    proc = subprocess.run([CLI, *args], env=c.env | env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    return Ran(proc.returncode, proc.stdout + proc.stderr)


def ok(ran: Ran) -> None:
    assert ran.rc == 0 and "Traceback" not in ran.out, ran.out[-3000:]


def files_ingest(c: Case, path: Path) -> Ran:
    return run(c, "ingest", "--data-dir", str(c.data.root), "--source", "files", "--path", str(path))


def file_rejects(c: Case) -> dict[str, tuple[str, str]]:
    df = c.rejects("ingest-files.parquet")
    return {r["source_id"]: (r["reason"], r["detail"]) for r in df.iter_rows(named=True)}


def ingested_ids(c: Case, source: str) -> set[str]:
    return set(read_table(c.data.table("problems") / source, "problems")["source_id"])


# -- empty answers ----------------------------------------------------------------------------

class EmptyServer(FakeServer):
    """Every answer a 200 whose message content is null, with no reasoning."""

    def openai_choice(self, prompt, index, j, max_tokens):
        return {"index": j, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}


@case
def case_null_content_is_a_failure_not_a_sample(c: Case):
    with EmptyServer("openai") as server:
        ran = c.cli("sample", "--config", c.config(base_config(c.data.root, server.url, model="fake-empty")))
    clear_error(ran, "every request", "empty answer")
    assert read_table(c.data.table("samples") / "openai_fake-empty", "samples").height == 0
    with sqlite3.connect(c.data.teacher_cache) as db:  # nothing cached as an answer: a re-run asks again
        assert not db.execute("SELECT count(*) FROM responses WHERE identity = 'openai/fake-empty'").fetchone()[0]


# -- images that cannot be read (ScienceQA release layout) ---------------------------------------

def without_caption(c: Case, pid: str) -> Path:
    f = c.sqa / "captions.json"
    captions = json.loads(f.read_text())
    captions["captions"].pop(pid)
    f.write_text(json.dumps(captions))
    return c.sqa / "scienceqa" / "images" / "train" / pid / "image.png"


def image_rejected(c: Case, reason: str) -> None:
    ok(ingest_sqa(c))
    rejects = c.rejects("ingest-scienceqa.parquet").filter(pl.col("source_id") == "1")
    assert rejects["reason"].to_list() == [reason], rejects
    assert "1" not in ingested_ids(c, "scienceqa") and "3" in ingested_ids(c, "scienceqa")  # never sent


@case
def case_image_file_missing_without_caption(c: Case):
    without_caption(c, "1").unlink()
    image_rejected(c, "image_missing")


@case
def case_image_symlink_loop_without_caption(c: Case):
    img = without_caption(c, "1")
    img.unlink()
    img.symlink_to(img)
    image_rejected(c, "image_unreadable")


@case
def case_image_path_is_a_directory(c: Case):
    img = without_caption(c, "1")
    img.unlink()
    img.mkdir()
    image_rejected(c, "image_unreadable")


@case
def case_missing_image_with_a_caption_keeps_the_row(c: Case):
    (c.sqa / "scienceqa" / "images" / "train" / "1" / "image.png").unlink()
    ok(ingest_sqa(c))
    assert "1" in ingested_ids(c, "scienceqa")  # the caption stands in for it


@case
def case_pid_in_two_splits(c: Case):
    f = c.sqa / "scienceqa" / "pid_splits.json"
    splits = json.loads(f.read_text())
    splits["test"].append("1")
    f.write_text(json.dumps(splits))
    ok(ingest_sqa(c))
    rejects = c.rejects("ingest-scienceqa.parquet").filter(pl.col("source_id") == "1")
    assert rejects["reason"].to_list() == ["split_conflict"] and "train and test" in rejects["detail"][0]


@case
def case_hint_struct_in_scienceqa(c: Case):
    f = c.sqa / "scienceqa" / "problems.json"
    problems = json.loads(f.read_text())
    problems["2"]["hint"] = {"text": "Mona will print her name."}
    f.write_text(json.dumps(problems))
    ok(ingest_sqa(c))
    rejects = c.rejects("ingest-scienceqa.parquet").filter(pl.col("source_id") == "2")
    assert rejects["reason"].to_list() == ["bad_shape"] and "hint" in rejects["detail"][0]


# -- values in the wrong shape (files source) ------------------------------------------------------

GOOD = {"id": "good", "question": "Which colour is the sky?", "choices": ["red", "blue"], "answer": "blue"}


@case
def case_answer_index_nan_in_parquet(c: Case):
    pl.DataFrame({"id": ["a", "b"], "question": ["Sky?", "Grass?"], "choices": [["red", "blue"], ["green", "pink"]],
                  "answer_index": [1.0, math.nan]}).write_parquet(c.tmp / "train.parquet")
    ok(files_ingest(c, c.tmp / "train.parquet"))
    assert file_rejects(c)["b"][0] == "bad_value" and "answer_index" in file_rejects(c)["b"][1]
    assert ingested_ids(c, "files") == {"a"}


@case
def case_precision_not_a_number_in_jsonl(c: Case):
    rows = [{"id": "a", "question": "Pi to two places?", "answer": "3.14", "precision": 2},
            {"id": "b", "question": "e to two places?", "answer": "2.72", "precision": "two"}]
    ok(files_ingest(c, jsonl(c, rows, "train.jsonl")))
    assert file_rejects(c)["b"][0] == "bad_value" and "precision" in file_rejects(c)["b"][1]
    assert ingested_ids(c, "files") == {"a"}


@case
def case_choices_struct(c: Case):
    rows = [GOOD, {"id": "s", "question": "Colour?", "choices": {"a": "red", "b": "blue"}, "answer": "a"}]
    ok(files_ingest(c, jsonl(c, rows, "train.jsonl")))
    assert file_rejects(c)["s"][0] == "bad_shape" and "choices" in file_rejects(c)["s"][1]


@case
def case_hint_struct(c: Case):
    rows = [GOOD, GOOD | {"id": "h", "hint": {"text": "Look up."}}]
    ok(files_ingest(c, jsonl(c, rows, "train.jsonl")))
    assert file_rejects(c)["h"][0] == "bad_shape" and "hint" in file_rejects(c)["h"][1]


@case
def case_string_where_a_number_belongs(c: Case):
    rows = [GOOD, GOOD | {"id": "n", "answer_index": "one"}, GOOD | {"id": "i", "answer_index": 1.5}]
    ok(files_ingest(c, jsonl(c, rows, "train.jsonl")))
    rejects = file_rejects(c)
    assert "n" in ingested_ids(c, "files")  # a non-number index is not used: its answer text decides
    assert rejects["i"][0] == "answer_not_in_choices" and "whole number" in rejects["i"][1]


@case
def case_jsonl_with_a_bom(c: Case):
    path = c.tmp / "train.jsonl"
    path.write_text("\ufeff" + json.dumps(GOOD) + "\n" + json.dumps(GOOD | {"id": "second"}) + "\n", encoding="utf-8")
    ok(files_ingest(c, path))
    assert ingested_ids(c, "files") == {"good", "second"} and c.rejects("ingest-files.parquet").height == 0


@case
def case_import_traces_with_a_bom(c: Case):
    path = c.tmp / "bom.jsonl"
    rows = [{"pid": "1", "response": "The answer is (A)."}, {"pid": "3", "response": "The answer is (B)."}]
    path.write_text("\ufeff" + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ok(imported(c, path))
    assert read_table(c.data.table("samples") / "t1", "samples").height == 2


# -- configuration ------------------------------------------------------------------------------

def fresh(c: Case) -> str:
    return str(c.tmp / "fresh")


@case
def case_yaml_yes_is_not_a_number(c: Case):
    clear_error(c.cli("sample", "--config", c.config(text="sample: {k: yes}\n")), "sample.k", "integer")


@case
def case_yaml_leading_zero_is_decimal(c: Case):
    text = f"data_dir: {fresh(c)}\ningest: {{source: synthetic, n_problems: 010}}\n"
    ok(c.cli("ingest", "--config", c.config(text=text)))
    assert read_table(Path(fresh(c)) / "problems", "problems").height == 10  # not octal 8


@case
def case_duplicate_variants(c: Case):
    clear_error(c.cli("sample", "--config", c.config(text="sample: {variants: [plain, plain]}\n")), "variants",
                "'plain' is listed twice")


@case
def case_duplicate_evaluate_prompts(c: Case):
    clear_error(c.cli("evaluate", "--config", c.config(text="evaluate: {prompts: [cot, cot]}\n")), "prompts", "'cot'")


@case
def case_duplicate_splits(c: Case):
    clear_error(c.cli("sample", "--config", c.config(text="sample: {splits: [train, train]}\n")), "splits", "twice")


@case
def case_duplicate_arms(c: Case):
    clear_error(c.cli("arms", "--config", c.config(text="arms: {arms: [raw, raw]}\n")), "arms", "'raw'")


@case
def case_duplicate_methods(c: Case):
    clear_error(c.cli("train", "--config", c.config(text="train: {methods: [lora, lora]}\n")), "methods", "'lora'")


@case
def case_data_dir_with_a_tilde(c: Case):
    home = c.tmp / "home"
    home.mkdir()
    ok(run(c, "ingest", "--config", c.config(text="data_dir: ~/x\ningest: {n_problems: 6}\n"), HOME=str(home)))
    assert (home / "x" / "problems").is_dir() and not (ROOT / "~").exists()


@case
def case_data_dir_with_an_environment_variable(c: Case):
    home = c.tmp / "home"
    home.mkdir()
    ok(run(c, "ingest", "--config", c.config(text="data_dir: $HOME/y\ningest: {n_problems: 6}\n"), HOME=str(home)))
    assert (home / "y" / "problems").is_dir() and not (ROOT / "$HOME").exists()


@case
def case_data_dir_with_an_unset_variable(c: Case):
    clear_error(c.cli("ingest", "--config", c.config(text="data_dir: $DISTILLERY_NOT_SET/x\n")), "data_dir",
                "DISTILLERY_NOT_SET", "not set")


@case
def case_empty_data_dir(c: Case):
    clear_error(c.cli("ingest", "--config", c.config(text="data_dir: ''\n")), "data_dir", "empty path")


@case
def case_ingest_without_a_source(c: Case):
    ok(c.cli("ingest", "--config", c.config(text=f"data_dir: {fresh(c)}\ningest: {{n_problems: 12}}\n")))
    assert read_table(Path(fresh(c)) / "problems", "problems").height == 12  # the synthetic default


@case
def case_unknown_ingest_source_lists_them(c: Case):
    clear_error(c.cli("ingest", "--config", c.config(text="ingest: {source: scienceqaa}\n")), "scienceqaa", "synthetic")


@case
def case_five_thousand_unknown_keys(c: Case):
    text = yaml.safe_dump({f"key{i}": i for i in range(5000)})
    clear_error(c.cli("verify", "--config", c.config(text=text)), "key0", "and 4980 more errors")


@case
def case_run_name_a_number(c: Case):
    clear_error(c.cli("report", "--config", c.config(text="run: 2024\n")), "run", "quote it")


@case
def case_base_url_without_a_scheme(c: Case):
    cfg = base_config(c.data.root, "127.0.0.1:9/v1")
    clear_error(c.cli("sample", "--config", c.config(cfg)), "base_urls", "http://127.0.0.1:9/v1")


@case
def case_llama_cpp_refuses_n_with_a_500(c: Case):
    with FakeServer("openai", accept_n=False, n_error=(500, "Only one completion choice is allowed")) as server:
        ran = c.cli("sample", "--config", c.config(base_config(c.data.root, server.url, model="fake-llama")))
    ok(ran)
    assert server.statuses[500] == 1 and server.repeated_successes() == {}
    samples = read_table(c.data.table("samples") / "openai_fake-llama", "samples")
    assert samples.group_by("problem_id").len()["len"].unique().to_list() == [2]


# -- the data directory -------------------------------------------------------------------------

@case
def case_read_only_data_directory(c: Case):
    disk = c.tmp / "ro"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("needs a tmpfs mount (root)")
    try:
        shutil.copytree(c.data.root, disk / "data")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        ran = c.cli("sample", "--config", c.config(base_config(disk / "data", model="fake-ro")))
        clear_error(ran, "teacher cache", "read-only")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@case
def case_smaller_reingest_removes_stale_shards(c: Case):
    data = DataDir(c.tmp / "shrink")
    with FakeServer("openai") as server:
        cfg = base_config(data.root, server.url, splits=["train", "val", "test"]) | {
            "ingest": {"source": "synthetic", "n_problems": 30, "shard_size": 10}}
        ok(c.cli("ingest", "--config", c.config(cfg)))
        ok(c.cli("caption", "--config", c.config(cfg)))
        ok(c.cli("sample", "--config", c.config(cfg)))
        cfg["ingest"]["n_problems"] = 15
        ran = c.cli("ingest", "--config", c.config(cfg))
        ok(ran)
        assert "removed" in ran.out and "synthetic-00002" in ran.out
        ok(c.cli("verify", "--config", c.config(cfg)))  # no stale shard asks for an ingest
        assert sum(server.successes.values()) == 30 * 2  # the re-ingest asked nothing new


def test_the_corpus_has_every_measured_case():
    assert len(CASES) + ELSEWHERE >= 35


@pytest.mark.parametrize("name", sorted(CASES))
def test_fault(name, tmp_path, api_env, sampled):  # noqa: F811
    sqa, data = sampled
    shutil.copytree(sqa, tmp_path / "sqa")
    shutil.copytree(data.root, tmp_path / "data")
    c = Case(tmp_path, api_env, tmp_path / "sqa", DataDir(tmp_path / "data"))
    samples_before = {p: p.read_bytes() for p in c.data.table("samples").rglob("*.parquet")}
    CASES[name](c)
    parquet_files_load(c.data.root)
    for p, content in samples_before.items():  # what was sampled before is never lost
        assert p.exists() and p.read_bytes() == content, p

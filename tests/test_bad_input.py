"""The bad-input corpus: what a hostile but fair new user tries, through the real CLI. Every case
ends in a clear error (exit code 2, one line naming the file or the command to run, no
traceback) or a `rejects` row with its reason; after each, every parquet under the data
directory loads with polars and nothing produced earlier is lost.

The CLI runs against one Prefect server started for this module (PREFECT_API_URL), so each
case pays only for its own command.
"""

import json
import os
import random
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml
from e2e import CLI, ROOT, prefect_server
from fake_servers import FakeServer
from scienceqa_fixture import write_release_layout

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import read_table
from students.backends import close_backends
from students.runner import run_shard

pytestmark = pytest.mark.slow
SECRET = "sk-corpus-0123456789abcdef"


@pytest.fixture(scope="module")
def api_env(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect"), OPENAI_API_KEY=SECRET) as env:
        yield env


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """A ScienceQA data dir (release layout) ingested, captioned, sampled, verified and selected."""
    root = tmp_path_factory.mktemp("sampled")
    sqa = write_release_layout(root / "sqa")
    data = DataDir(root / "data")
    with FakeServer("openai") as server:
        cfg = base_config(data.root, server.url, splits=["train", "val", "test"])
        config = FactoryConfig.model_validate(cfg)
        from tasks.ingest import ingest

        ingest(config.ingest.model_copy(update={"path": str(sqa)}), data)
        for shard in data.shards():
            run_shard("caption", config, data, shard)
            run_shard("sample", config, data, shard)
        close_backends()
        for f in data.sample_files():
            run_shard("verify", config, data, f)
            run_shard("select", config, data, f)
    return sqa, data


def base_config(data_dir, url="http://127.0.0.1:9/v1", **sample) -> dict:
    return {"data_dir": str(data_dir), "ingest": {"source": "scienceqa"},
            "sample": {"teacher": "openai", "model": "fake-r1", "k": 2, "variants": ["plain"],
                       "endpoint": {"base_urls": [url], "max_attempts": 1}} | sample,
            "arms": {"arms": ["raw", "teacher_cot"]}}


@dataclass
class Ran:
    rc: int
    out: str


@dataclass
class Case:
    tmp: Path
    env: dict
    sqa: Path
    data: DataDir

    def config(self, cfg: dict | None = None, name: str = "cfg.yaml", text: str | None = None) -> str:
        path = self.tmp / name
        path.write_text(text if text is not None else yaml.safe_dump(cfg or base_config(self.data.root)))
        return str(path)

    def cli(self, *args: str, timeout: int = 300) -> Ran:
        proc = subprocess.run([CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        return Ran(proc.returncode, proc.stdout + proc.stderr)

    def rejects(self, name: str) -> pl.DataFrame:
        return read_table(self.data.table("rejects") / name, "rejects")


def clear_error(ran: Ran, *needles: str) -> None:
    """Exit code 2, no traceback, a short message holding every needle; never the API key."""
    assert ran.rc == 2, ran.out[-3000:]
    assert "Traceback" not in ran.out, ran.out[-3000:]
    assert SECRET not in ran.out
    assert len(ran.out) < 20_000, f"{len(ran.out)} characters of output"
    said = [line for line in ran.out.splitlines() if line.startswith("distillery")]
    assert said, ran.out[-2000:]
    line = said[-1]
    for needle in needles:
        assert needle in line, line


CASES = {}


def case(fn):
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


# -- configuration ----------------------------------------------------------------------------

@case
def case_malformed_yaml(c: Case):
    clear_error(c.cli("verify", "--config", c.config(text="sample: {k: 2\narms: [")), "cfg.yaml", "not valid YAML")


@case
def case_config_is_a_directory(c: Case):
    clear_error(c.cli("verify", "--config", str(c.tmp)), "is a directory")


@case
def case_config_missing(c: Case):
    clear_error(c.cli("verify", "--config", str(c.tmp / "nope.yaml")), "nope.yaml")


@case
def case_config_top_level_list(c: Case):
    clear_error(c.cli("verify", "--config", c.config(text="- 1\n- 2\n")), "expected a mapping")


@case
def case_config_binary(c: Case):
    path = c.tmp / "bin.yaml"
    path.write_bytes(bytes(range(256)) * 50)
    clear_error(c.cli("verify", "--config", str(path)), "bin.yaml")


@case
def case_duplicate_yaml_keys(c: Case):
    clear_error(c.cli("verify", "--config", c.config(text="run: a\nrun: b\n")), "duplicate key 'run'")


@case
def case_unknown_config_key(c: Case):
    clear_error(c.cli("verify", "--config", c.config(text="sampel: {k: 2}\n")), "sampel")


@case
def case_split_fractions_out_of_range(c: Case):
    text = "ingest: {source: synthetic, split_fractions: {train: 5, val: -1, test: 0}}\n"
    clear_error(c.cli("ingest", "--config", c.config(text=text)), "split_fractions")


@case
def case_split_fractions_not_summing_to_one(c: Case):
    text = "ingest: {source: synthetic, split_fractions: {train: 0.5, val: 0.1, test: 0.1}}\n"
    clear_error(c.cli("ingest", "--config", c.config(text=text)), "sum")


@case
def case_empty_variants(c: Case):
    clear_error(c.cli("sample", "--config", c.config(text="sample: {variants: []}\n")), "variants")


@case
def case_empty_splits(c: Case):
    clear_error(c.cli("sample", "--config", c.config(text="sample: {splits: []}\n")), "splits")


@case
def case_negative_k(c: Case):
    clear_error(c.cli("sample", "--config", c.config(text="sample: {k: -3}\n")), "k")


@case
def case_run_name_dots_in_config(c: Case):
    clear_error(c.cli("report", "--config", c.config(text="run: '..'\n")), "run")


@case
def case_run_name_dots_on_command_line(c: Case):
    clear_error(c.cli("report", "--data-dir", str(c.data.root), "--run-name", ".."), "run")


@case
def case_run_name_with_separator(c: Case):
    clear_error(c.cli("report", "--data-dir", str(c.data.root), "--run-name", "a/b"), "run")


# -- missing stages -----------------------------------------------------------------------------

def empty_dir(c: Case) -> str:
    return c.config(base_config(c.tmp / "empty"), name="empty.yaml")


@case
def case_sample_on_an_empty_data_dir(c: Case):
    clear_error(c.cli("sample", "--config", empty_dir(c)), "no problems", "distillery ingest")


@case
def case_caption_on_an_empty_data_dir(c: Case):
    clear_error(c.cli("caption", "--config", empty_dir(c)), "distillery ingest")


@case
def case_verify_on_an_empty_data_dir(c: Case):
    clear_error(c.cli("verify", "--config", empty_dir(c)), "no samples", "distillery sample")


@case
def case_select_on_an_empty_data_dir(c: Case):
    clear_error(c.cli("select", "--config", empty_dir(c)), "no samples")


@case
def case_arms_on_an_empty_data_dir(c: Case):
    clear_error(c.cli("arms", "--config", empty_dir(c)), "distillery ingest")


@case
def case_report_before_evaluate(c: Case):
    clear_error(c.cli("report", "--config", c.config()), "no evaluations", "distillery evaluate")


@case
def case_train_before_arms(c: Case):
    clear_error(c.cli("train", "--config", c.config()), "distillery arms")


@case
def case_export_before_arms(c: Case):
    clear_error(c.cli("export", "--config", c.config()), "distillery arms")


@case
def case_evaluate_before_train(c: Case):
    clear_error(c.cli("evaluate", "--config", c.config()), "distillery train")


@case
def case_select_before_verify(c: Case):
    for f in c.data.table("verdicts").rglob("*.parquet"):
        f.unlink()
    clear_error(c.cli("select", "--config", c.config()), "distillery verify")


@case
def case_arms_before_select(c: Case):
    shutil.rmtree(c.data.table("selected"))
    clear_error(c.cli("arms", "--config", c.config()), "distillery select")


@case
def case_arms_teacher_typo(c: Case):
    cfg = base_config(c.data.root) | {"arms": {"arms": ["teacher_cot"], "teacher": "openai/fake-r2"}}
    before = {p: p.read_bytes() for p in c.data.table("arms").rglob("*.parquet")}
    clear_error(c.cli("arms", "--config", c.config(cfg)), "openai/fake-r2", "openai/fake-r1")
    assert {p: p.read_bytes() for p in c.data.table("arms").rglob("*.parquet")} == before


@case
def case_corrupt_samples_shard(c: Case):
    bad = next(c.data.table("samples").rglob("*.parquet"))
    bad.write_bytes(os.urandom(4096))
    ran = c.cli("arms", "--config", c.config())
    clear_error(ran, bad.name, "not a readable parquet file")
    bad.unlink()  # the data dir must stay readable for the common check


@case
def case_corrupt_teacher_cache(c: Case):
    for f in c.data.teacher_cache.parent.iterdir():
        f.unlink()
    c.data.teacher_cache.write_bytes(b"this is not a database" * 100)
    clear_error(c.cli("sample", "--config", c.config()), "teacher cache", str(c.data.teacher_cache.name))


# -- teachers -----------------------------------------------------------------------------------

@case
def case_every_request_401(c: Case):
    before = {p: p.read_bytes() for p in c.data.table("samples").rglob("*.parquet")}
    with FakeServer("openai", status_all=401) as server:
        cfg = base_config(c.data.root, server.url, model="fake-other")
        ran = c.cli("sample", "--config", c.config(cfg))
    clear_error(ran, "401", server.url, "failed")
    assert {p: p.read_bytes() for p in before} == before  # the other teacher's samples are untouched


@case
def case_every_caption_request_401(c: Case):
    with FakeServer("openai", status_all=401) as server:
        cfg = base_config(c.data.root) | {"caption": {"captioner": "openai", "model": "fake-vision",
                                                      "endpoint": {"base_urls": [server.url], "max_attempts": 1}}}
        ran = c.cli("caption", "--config", c.config(cfg))
    clear_error(ran, "every request to captioner", "401", server.url)


@case
def case_sample_without_captions(c: Case):
    """ingest then sample without `caption`: image problems are not sent; the rest are."""
    shutil.rmtree(c.data.table("captions"))
    with FakeServer("openai") as server:
        ran = c.cli("sample", "--config", c.config(base_config(c.data.root, server.url, model="fresh",
                                                                splits=["train", "val", "test"])))
        prompts = [b["messages"][-1]["content"] for b in server.bodies]
    assert ran.rc == 0, ran.out[-3000:]
    assert "distillery caption" in ran.out
    rejects = c.rejects("sample-openai_fresh")
    assert set(rejects["reason"]) == {"no_caption"} and rejects.height == 2  # the two image problems
    assert prompts and all("farthest north" not in p and "pencil" not in p for p in prompts)


@case
def case_huge_question(c: Case):
    problems = json.loads((c.sqa / "scienceqa" / "problems.json").read_text())
    problems["2"]["hint"] = "word " * 40_000  # 200,000 characters: about 50,000 tokens
    (c.sqa / "scienceqa" / "problems.json").write_text(json.dumps(problems))
    cfg = base_config(c.data.root, splits=["val"], max_prompt_tokens=8000, model="fake-big")
    assert c.cli("ingest", "--config", c.config(cfg), "--path", str(c.sqa)).rc == 0
    with FakeServer("openai") as server:
        cfg["sample"]["endpoint"]["base_urls"] = [server.url]
        ran = c.cli("sample", "--config", c.config(cfg))
    clear_error(ran, "nothing to ask", "prompt_too_long")
    assert not server.bodies
    assert c.rejects("sample-openai_fake-big")["reason"].to_list() == ["prompt_too_long"]


# -- sources --------------------------------------------------------------------------------------

def ingest_sqa(c: Case) -> Ran:
    return c.cli("ingest", "--config", c.config(), "--path", str(c.sqa))


@case
def case_truncated_problems_json(c: Case):
    f = c.sqa / "scienceqa" / "problems.json"
    f.write_text(f.read_text()[:200])
    clear_error(ingest_sqa(c), "problems.json", "not valid JSON")


@case
def case_empty_problems_json(c: Case):
    (c.sqa / "scienceqa" / "problems.json").write_text("")
    clear_error(ingest_sqa(c), "problems.json")


@case
def case_problems_json_a_list(c: Case):
    (c.sqa / "scienceqa" / "problems.json").write_text("[1, 2, 3]")
    clear_error(ingest_sqa(c), "problems.json", "expected")


@case
def case_truncated_pid_splits(c: Case):
    f = c.sqa / "scienceqa" / "pid_splits.json"
    f.write_text(f.read_text()[:15])
    clear_error(ingest_sqa(c), "pid_splits.json")


@case
def case_truncated_captions(c: Case):
    f = c.sqa / "captions.json"
    f.write_text(f.read_text()[:20])
    clear_error(ingest_sqa(c), "captions.json")


@case
def case_missing_path(c: Case):
    clear_error(c.cli("ingest", "--config", c.config(), "--path", str(c.tmp / "nowhere")), "nowhere")


@case
def case_lone_surrogate_in_one_row(c: Case):
    f = c.sqa / "scienceqa" / "problems.json"
    f.write_text(f.read_text().replace('"hint": "Mona will print her name."', '"hint": "Mona \\ud83d will print."'))
    ran = ingest_sqa(c)
    assert ran.rc == 0, ran.out[-3000:]
    rejects = c.rejects("ingest-scienceqa.parquet")
    assert rejects.filter(pl.col("source_id") == "2")["reason"].to_list() == ["bad_text"]
    assert read_table(c.data.table("problems"), "problems").height == 2  # 1 and 3 (4 and 5 are broken rows)


@case
def case_split_file_names_a_missing_problem(c: Case):
    f = c.sqa / "scienceqa" / "pid_splits.json"
    splits = json.loads(f.read_text())
    splits["train"].append("404")
    f.write_text(json.dumps(splits))
    assert ingest_sqa(c).rc == 0
    rejects = c.rejects("ingest-scienceqa.parquet")
    assert rejects.filter(pl.col("source_id") == "404")["reason"].to_list() == ["missing_problem"]


@case
def case_problem_in_no_split(c: Case):
    f = c.sqa / "scienceqa" / "pid_splits.json"
    splits = json.loads(f.read_text())
    splits["val"] = []
    f.write_text(json.dumps(splits))
    problems = json.loads((c.sqa / "scienceqa" / "problems.json").read_text())
    problems["2"].pop("split")
    (c.sqa / "scienceqa" / "problems.json").write_text(json.dumps(problems))
    assert ingest_sqa(c).rc == 0
    assert c.rejects("ingest-scienceqa.parquet").filter(pl.col("source_id") == "2")["reason"].to_list() == [
        "unknown_split"]


@case
def case_every_row_rejected(c: Case):
    f = c.sqa / "scienceqa" / "problems.json"
    f.write_text(json.dumps({str(i): {"question": None, "choices": ["a"], "answer": 0} for i in range(5)}))
    before = {p: p.read_bytes() for p in c.data.table("problems").rglob("*.parquet")}
    clear_error(ingest_sqa(c), "every row", "malformed_row")
    assert {p: p.read_bytes() for p in before} == before  # the earlier ingest's problems are kept


@case
def case_files_source_without_data_files(c: Case):
    (c.tmp / "nothing").mkdir()
    clear_error(c.cli("ingest", "--data-dir", str(c.data.root), "--source", "files", "--path", str(c.tmp / "nothing")),
                "no data files")


@case
def case_files_source_broken_jsonl_line(c: Case):
    rows = [{"id": "a", "question": "2+2?", "answer": "4"}, {"id": "b", "question": "3+3?", "answer": "6"}]
    (c.tmp / "train.jsonl").write_text(json.dumps(rows[0]) + "\n{half\n" + json.dumps(rows[1]) + "\n")
    ran = c.cli("ingest", "--data-dir", str(c.data.root), "--source", "files", "--path", str(c.tmp / "train.jsonl"))
    assert ran.rc == 0, ran.out[-3000:]
    assert c.rejects("ingest-files.parquet")["reason"].to_list() == ["malformed_row"]


@case
def case_files_source_random_bytes_parquet(c: Case):
    (c.tmp / "train.parquet").write_bytes(os.urandom(1 << 20))
    ran = c.cli("ingest", "--data-dir", str(c.data.root), "--source", "files", "--path", str(c.tmp / "train.parquet"))
    clear_error(ran, "train.parquet", "not a readable parquet file")


@case
def case_over_long_field(c: Case):
    f = c.sqa / "scienceqa" / "problems.json"
    problems = json.loads(f.read_text())
    problems["2"]["lecture"] = "x" * 1_100_000
    f.write_text(json.dumps(problems))
    assert ingest_sqa(c).rc == 0
    assert c.rejects("ingest-scienceqa.parquet").filter(pl.col("source_id") == "2")["reason"].to_list() == [
        "field_too_long"]


# -- import-traces ---------------------------------------------------------------------------------

def imported(c: Case, path: Path, teacher: str = "t1") -> Ran:
    return c.cli("import-traces", "--data-dir", str(c.data.root), "--file", str(path), "--teacher", teacher,
                 "--source", "scienceqa")


def jsonl(c: Case, rows: list, name: str = "traces.jsonl") -> Path:
    path = c.tmp / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@case
def case_import_missing_file(c: Case):
    clear_error(imported(c, c.tmp / "absent.jsonl"), "absent.jsonl")


@case
def case_import_file_is_a_directory(c: Case):
    clear_error(imported(c, c.tmp), "is a directory")


@case
def case_import_binary_file(c: Case):
    path = c.tmp / "blob.jsonl"
    path.write_bytes(random.Random(0).randbytes(1 << 20))
    clear_error(imported(c, path), "blob.jsonl", "not a UTF-8 text file")


@case
def case_import_random_bytes_parquet(c: Case):
    path = c.tmp / "blob.parquet"
    path.write_bytes(os.urandom(1 << 16))
    clear_error(imported(c, path), "blob.parquet", "not a readable parquet file")


@case
def case_import_unknown_suffix(c: Case):
    path = c.tmp / "traces.txt"
    path.write_text("hello\n")
    clear_error(imported(c, path), "traces.txt", ".jsonl")


@case
def case_import_json_scalar(c: Case):
    path = c.tmp / "traces.json"
    path.write_text('"just a string"')
    clear_error(imported(c, path), "traces.json", "expected")


@case
def case_import_teacher_dots(c: Case):
    clear_error(imported(c, jsonl(c, [{"pid": "1", "response": "The answer is (A)."}]), teacher=".."),
                "teacher name")
    assert not (c.data.table("samples").parent / "t1").exists()


@case
def case_import_source_not_ingested(c: Case):
    ran = c.cli("import-traces", "--data-dir", str(c.data.root), "--file",
                str(jsonl(c, [{"pid": "1", "response": "A"}])), "--teacher", "t1", "--source", "mathvista")
    clear_error(ran, "mathvista", "distillery ingest")


@case
def case_import_bad_rows(c: Case):
    rows = [{"pid": "1", "response": "The answer is (A).", "sample_index": 0},
            {"pid": "1", "response": "The answer is (B).", "sample_index": -5},
            {"pid": "1", "response": "The answer is (C).", "sample_index": 0},  # the same index again
            {"pid": "3", "response": "The answer is (A).", "sample_index": 2**40},
            {"pid": "3", "response": "Fine \ud83d", "sample_index": 1},
            {"pid": "99", "response": "The answer is (A)."}]
    path = c.tmp / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    ran = imported(c, path)
    assert ran.rc == 0, ran.out[-3000:]
    reasons = c.rejects("import-t1-bad.parquet")["reason"].to_list()
    assert sorted(reasons) == ["bad_json", "bad_sample_index", "bad_sample_index", "bad_text", "duplicate_sample",
                               "unknown_problem"]


@case
def case_import_integer_responses(c: Case):
    df = pl.DataFrame({"pid": ["1", "3"], "response": [1, 2]})
    df.write_parquet(c.tmp / "ints.parquet")
    clear_error(imported(c, c.tmp / "ints.parquet"), "every row", "response_not_text")


@case
def case_import_out_of_range_columns(c: Case):
    df = pl.DataFrame({"pid": ["1", "3"], "response": ["The answer is (A).", "The answer is (B)."],
                       "completion_tokens": [1e30, -4.0], "prompt_tokens": [float("nan"), 2.5]})
    df.write_parquet(c.tmp / "range.parquet")
    ran = imported(c, c.tmp / "range.parquet")
    assert ran.rc == 0, ran.out[-3000:]
    got = read_table(c.data.table("samples") / "t1", "samples")
    assert got.height == 2 and got["completion_tokens"].null_count() == 2  # absurd counts are unknown, not kept


@case
def case_import_wrongly_typed_columns(c: Case):
    df = pl.DataFrame({"pid": ["1"], "response": ["The answer is (A)."], "model": [3], "sample_index": ["zero"]})
    df.write_parquet(c.tmp / "typed.parquet")
    clear_error(imported(c, c.tmp / "typed.parquet"), "every row")
    assert set(c.rejects("import-t1-typed.parquet")["reason"]) <= {"bad_value", "bad_sample_index"}


@case
def case_import_all_lines_broken(c: Case):
    path = c.tmp / "broken.jsonl"
    path.write_text("{a\n{b\n")
    clear_error(imported(c, path), "broken.jsonl", "no rows")


@case
def case_import_unknown_column(c: Case):
    ran = c.cli("import-traces", "--data-dir", str(c.data.root), "--file", str(jsonl(c, [{"pid": "1", "x": "A"}])),
                "--teacher", "t1", "--source", "scienceqa")
    clear_error(ran, "no response column")


# -- the corpus --------------------------------------------------------------------------------------

def parquet_files_load(root: Path) -> None:
    for f in root.rglob("*.parquet"):
        pl.read_parquet(f)  # raises on a half-written or foreign file
    assert not [p for p in root.rglob("*.tmp")], "temporary files left behind"


def test_the_corpus_has_every_measured_case():
    assert len(CASES) >= 47


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, tmp_path, api_env, sampled):
    sqa, data = sampled
    shutil.copytree(sqa, tmp_path / "sqa")
    shutil.copytree(data.root, tmp_path / "data")
    c = Case(tmp_path, api_env, tmp_path / "sqa", DataDir(tmp_path / "data"))
    samples_before = {p: p.read_bytes() for p in c.data.table("samples").rglob("*.parquet")}
    CASES[name](c)
    parquet_files_load(c.data.root)
    if (c.data.teacher_cache.exists() and name != "corrupt_teacher_cache"):
        with sqlite3.connect(c.data.teacher_cache) as db:
            db.execute("SELECT count(*) FROM responses").fetchone()
    if name not in ("corrupt_samples_shard",):
        for p, content in samples_before.items():  # what was sampled before is never lost
            assert p.exists() and (p.read_bytes() == content or name.startswith(("import", "sample"))), p


def test_a_full_disk_is_one_line_naming_the_file_and_changes_nothing(tmp_path, api_env, sampled):
    """A file size limit makes every write past it fail as a full disk does (SIGXFSZ ignored:
    the write returns an error): verify fails with one line naming the file, exit code 2, and
    the verdicts already there are the same bytes."""
    import resource
    import signal

    sqa, data = sampled
    shutil.copytree(data.root, tmp_path / "data")
    c = Case(tmp_path, api_env, sqa, DataDir(tmp_path / "data"))
    before = snapshot_of(c.data.root)
    limit = min(len(v) for k, v in before.items() if k.startswith("verdicts/")) // 2

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cfg = base_config(c.data.root) | {"verify": {"rel_tol": 0.01}}  # another setting: verify must write again
    proc = subprocess.run([CLI, "verify", "--config", c.config(cfg)], env=c.env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT, preexec_fn=small_disk)
    clear_error(Ran(proc.returncode, proc.stdout + proc.stderr), "verdicts", "nothing already written was changed")
    assert snapshot_of(c.data.root) == before
    parquet_files_load(c.data.root)


def snapshot_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "teacher_cache" not in p.parts}

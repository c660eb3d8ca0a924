"""import-traces: existing traces stored as a teacher's samples, then verified and selected
like sampled ones; on a ScienceQA release-layout directory built here."""

import json

import polars as pl
import pytest
from e2e import prefect_env, run_cli
from scienceqa_fixture import write_release_layout

from schemas.config import ScienceQAIngest
from schemas.paths import DataDir
from schemas.tables import read_table
from tasks.import_traces import ImportSettings, find_columns, import_traces
from tasks.ingest import ingest

TRACES = [  # what teachers and other tools write; ScienceQA ids: 1 train, 2 val, 3 test (see scienceqa_fixture)
    {"pid": "1", "response": "<think>The map shows West Virginia at the top.</think>The answer is (A).",
     "completion_tokens": 40, "prompt_tokens": 90},
    {"pid": "1", "response": "Louisiana is south. The answer is B.", "completion_tokens": 12, "prompt_tokens": 90},
    {"pid": 1, "response": "It is the state furthest up: West Virginia.", "completion_tokens": 11},  # an int id
    {"pid": "3", "response": ["A pencil keeps its shape. The answer is (A).", "The answer is (B) a liquid."]},
    {"pid": "2", "response": "It says will. Answer: B", "variant": "lecture", "reasoning": "will -> future"},
    {"pid": "99", "response": "The answer is (A)."},  # no such problem
    {"pid": "2", "response": "   "},  # nothing said
    {"pid": "3", "response": "x", "variant": "sideways"},
]


def write_jsonl(path, rows, broken_line=True):
    lines = [json.dumps(r) for r in rows] + (["{not json"] if broken_line else [])
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def sqa(tmp_path):
    data = DataDir(tmp_path / "data")
    ingest(ScienceQAIngest(path=str(write_release_layout(tmp_path / "sqa"))), data)
    return data


def test_rows_become_samples_and_bad_rows_rejects(sqa, tmp_path):
    result = import_traces(sqa, write_jsonl(tmp_path / "r1.jsonl", TRACES), ImportSettings("r1-distill", "scienceqa"))
    samples = read_table(sqa.table("samples"), "samples")
    assert result.samples == samples.height == 6 and result.problems == 3
    assert set(samples["teacher"]) == {"r1-distill"} and samples["sample_id"].n_unique() == 6
    assert result.rejects == {"unknown_problem": 1, "empty_response": 1, "unknown_variant": 1, "bad_json": 1}
    rejects = read_table(sqa.table("rejects") / "import-r1-distill-r1.parquet", "rejects")
    assert sorted(rejects["reason"]) == sorted(result.rejects.elements())
    first = samples.filter(pl.col("content") == "The answer is (A).").row(0, named=True)
    assert first["reasoning"] == "The map shows West Virginia at the top." and first["completion_tokens"] == 40
    lecture = samples.filter(pl.col("variant") == "lecture").row(0, named=True)
    assert lecture["reasoning"] == "will -> future" and lecture["content"] == "It says will. Answer: B"
    one = samples.filter(pl.col("problem_id") == first["problem_id"]).sort("sample_index")
    assert one["sample_index"].to_list() == [0, 1, 2]  # the int id joined the string ones


def test_reimport_is_idempotent_and_a_new_file_replaces_its_problems_only(sqa, tmp_path):
    import_traces(sqa, write_jsonl(tmp_path / "a.jsonl", TRACES), ImportSettings("t", "scienceqa"))
    before = read_table(sqa.table("samples"), "samples").sort("sample_id")
    import_traces(sqa, write_jsonl(tmp_path / "a.jsonl", TRACES), ImportSettings("t", "scienceqa"))
    assert read_table(sqa.table("samples"), "samples").sort("sample_id").equals(before)
    import_traces(sqa, write_jsonl(tmp_path / "b.jsonl", [{"pid": "3", "response": "Solid: (A)"}], False), ImportSettings("t", "scienceqa"))
    after = read_table(sqa.table("samples"), "samples")
    pid3 = after.join(read_table(sqa.table("problems"), "problems").select("problem_id", "source_id"), on="problem_id")
    assert pid3.filter(pl.col("source_id") == "3")["content"].to_list() == ["Solid: (A)"]
    assert after.height == before.height - 2 + 1  # problem 3's two samples replaced by one; the rest kept


def test_parquet_chats_and_named_columns(sqa, tmp_path):
    chats = pl.DataFrame({
        "question_uid": ["1", "3"],
        "messages": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "The answer is (A)."}],
                     [{"role": "user", "content": "q"}, {"role": "assistant", "content": "(B)"}]],
        "think": ["north is up", None],
    })
    chats.write_parquet(tmp_path / "chats.parquet")
    result = import_traces(sqa, tmp_path / "chats.parquet", ImportSettings(
        "gemini-2.5-flash", "scienceqa", id_column="question_uid", reasoning_column="think"))
    samples = read_table(sqa.table("samples"), "samples").sort("content")
    assert result.samples == 2 and samples["content"].to_list() == ["(B)", "The answer is (A)."]
    assert samples["reasoning"].to_list() == [None, "north is up"]


def test_missing_columns_are_named_in_the_error(sqa, tmp_path):
    with pytest.raises(ValueError, match="no id column.*--id-column"):
        find_columns([{"answer_text_x": "a", "response": "b"}])
    with pytest.raises(ValueError, match="'nope'"):
        find_columns([{"id": "1", "response": "b"}], response_column="nope")
    with pytest.raises(ValueError, match="no problems of source 'mathvista'"):
        import_traces(sqa, write_jsonl(tmp_path / "x.jsonl", TRACES[:1]), ImportSettings("t", "mathvista"))


@pytest.mark.slow
def test_cli_import_then_verify_and_select(sqa, tmp_path):
    """The commands a user runs, on a ScienceQA-layout directory: the imported traces get
    verdicts and selections like sampled ones."""
    env = prefect_env(tmp_path / "prefect")
    common = ["--data-dir", str(sqa.root)]
    out, _ = run_cli(["import-traces", "--file", str(write_jsonl(tmp_path / "r1.jsonl", TRACES)),
                      "--teacher", "r1-distill", "--source", "scienceqa", *common], env)
    assert out["samples"] == 6 and out["rejects"]["unknown_problem"] == 1
    assert run_cli(["verify", *common], env)[0]["verdicts"] == 6
    verdicts = read_table(sqa.table("verdicts"), "verdicts").join(
        read_table(sqa.table("samples"), "samples").select("sample_id", "content"), on="sample_id")
    judged = dict(zip(verdicts["content"], verdicts["correct"], strict=True))
    assert judged == {  # gold: 1 -> (A) West Virginia, 2 -> (B) future tense, 3 -> (A) a solid
        "The answer is (A).": True, "Louisiana is south. The answer is B.": False,
        "It is the state furthest up: West Virginia.": True, "A pencil keeps its shape. The answer is (A).": True,
        "The answer is (B) a liquid.": False, "It says will. Answer: B": True,
    }
    assert run_cli(["select", *common], env)[0]["selected"] == 3
    selected = read_table(sqa.table("selected"), "selected").join(
        read_table(sqa.table("problems"), "problems").select("problem_id", "source_id"), on="problem_id")
    one = selected.filter(pl.col("source_id") == "1").row(0, named=True)
    assert (one["n_samples"], one["n_correct"]) == (3, 2) and one["content"] == "It is the state furthest up: West Virginia."
    assert one["pass_at_k"] == 1.0 and abs(one["pass_at_1"] - 2 / 3) < 1e-9


def test_openai_and_gemini_batch_output_lines(sqa, tmp_path):
    """The jsonl lines OpenAI's and Gemini's batch jobs write, with custom_id / key set to the source id."""
    openai_line = {"id": "batch_req_1", "custom_id": "1", "error": None, "response": {"status_code": 200, "body": {
        "model": "deepseek-reasoner", "usage": {"prompt_tokens": 50, "completion_tokens": 90},
        "choices": [{"message": {"role": "assistant", "content": "The answer is (A).", "reasoning_content": "North."},
                     "finish_reason": "stop"},
                    {"message": {"role": "assistant", "content": "The answer is (B), I think, maybe."},
                     "finish_reason": "length"}]}}}
    failed = {"id": "batch_req_2", "custom_id": "3", "response": None,
              "error": {"code": "server_error", "message": "boom"}}
    gemini_line = {"key": "3", "response": {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Solids keep shape.", "thought": True},
                                                               {"text": "The answer is (A)."}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 8, "thoughtsTokenCount": 12}}}
    a = import_traces(sqa, write_jsonl(tmp_path / "openai.jsonl", [openai_line, failed], False), ImportSettings("ds", "scienceqa"))
    b = import_traces(sqa, write_jsonl(tmp_path / "gemini.jsonl", [gemini_line], False), ImportSettings("gm", "scienceqa"))
    assert (a.samples, dict(a.rejects), b.samples) == (2, {"error_response": 1}, 1)
    samples = read_table(sqa.table("samples"), "samples").sort("teacher", "sample_index")
    ds = samples.filter(pl.col("teacher") == "ds")
    assert ds["reasoning"].to_list() == ["North.", None] and ds["finish_reason"].to_list() == ["stop", "length"]
    assert ds["completion_tokens"].sum() == 90 and ds["prompt_tokens"].sum() == 50  # the batch's usage, shared out
    gm = samples.filter(pl.col("teacher") == "gm").row(0, named=True)
    assert (gm["reasoning"], gm["content"], gm["finish_reason"]) == ("Solids keep shape.", "The answer is (A).", "stop")
    assert (gm["prompt_tokens"], gm["completion_tokens"]) == (40, 20)  # thoughts are paid output


def test_r1_style_bare_closing_think_tag(sqa, tmp_path):
    import_traces(sqa, write_jsonl(tmp_path / "r1.jsonl", [{"id": "1", "output": "Maps put north up.\n</think>\n\n"
                                                                                  "**Answer:** (A)"}], False), ImportSettings("r1", "scienceqa"))
    s = read_table(sqa.table("samples"), "samples").row(0, named=True)
    assert (s["reasoning"], s["content"]) == ("Maps put north up.", "**Answer:** (A)")


def test_import_source_is_not_taken_for_an_ingest_source():
    """`--source` of import-traces names an ingested source; it must not rewrite `ingest.source`
    (whose choices are the ingest backends), or importing from e.g. a `files` source would fail."""
    from flows.cli import load_config, parser

    args = parser().parse_args(["import-traces", "--file", "x.jsonl", "--teacher", "t", "--source", "mathvista"])
    assert load_config(args).ingest.source == "synthetic"
    assert load_config(parser().parse_args(["ingest", "--source", "scienceqa"])).ingest.source == "scienceqa"

"""Every preset ingests its dataset's real column layout, saved with `save_to_disk` and as the
hub's parquet files; files with a mapping; MathVista's GitHub release layout."""

import json

import polars as pl
import pytest
from dataset_fixtures import mathvista_release, png, save

from schemas.config import DatasetIngest, FactoryConfig
from schemas.paths import DataDir
from schemas.tables import read_table
from tasks.ingest import ingest

LAYOUTS = ["save_to_disk", "parquet"]


def ingested(tmp_path, source: str, path, **cfg) -> tuple[pl.DataFrame, pl.DataFrame, DataDir]:
    data = DataDir(tmp_path / "data")
    ingest(DatasetIngest(source=source, path=str(path), **cfg), data)
    return (read_table(data.table("problems"), "problems"), read_table(data.table("rejects"), "rejects"), data)


def by_id(problems: pl.DataFrame) -> dict[str, dict]:
    return {r["source_id"]: r for r in problems.iter_rows(named=True)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_mathvista(tmp_path, layout):
    problems, rejects, data = ingested(tmp_path, "mathvista", save("mathvista", tmp_path, layout))
    p = by_id(problems)
    assert set(p) == {"1", "2", "3", "12", "20"} and set(problems["split"]) == {"test"}  # testmini; test not read
    assert (p["1"]["answer_type"], p["1"]["answer"], p["1"]["precision"]) == ("numeric", "1.2", 1)
    assert (p["2"]["answer_type"], p["2"]["unit"]) == ("numeric", "g")
    assert (p["3"]["answer_type"], p["3"]["answer_index"], p["3"]["choices"][2]) == ("multiple_choice", 2, "145°")
    assert p["12"]["answer_index"] == 0 and p["20"]["answer_type"] == "free_form"
    assert (p["1"]["origin"], p["1"]["category"], p["1"]["context"], p["1"]["grade"], p["1"]["topic"]) == (
        "SciBench", "math-targeted-vqa", "scientific figure", "college", "textbook question answering")
    assert p["2"]["skills"] == ["numeric commonsense", "arithmetic reasoning"]
    assert p["1"]["hint"].startswith("Please answer the question requiring a floating-point number with one decimal")
    assert all(data.image(r["image_sha"]).exists() and r["image_phash"] for r in p.values())
    assert rejects.is_empty()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_aokvqa(tmp_path, layout):
    problems, _, _ = ingested(tmp_path, "aokvqa", save("aokvqa", tmp_path, layout))
    p = by_id(problems)
    assert {r["split"] for r in p.values()} == {"train", "test"} and len(p) == 2  # test split (no answers) not read
    train = p["22MexNkBPpdZGX6sxbxVBH"]
    assert (train["answer"], train["answer_index"], train["answer_type"]) == ("cab", 3, "multiple_choice")
    assert train["solution"] == "A train would not be on the street."  # the first rationale
    assert p["22jbM6gDxdaMaunuzgrsBB"]["split"] == "test"  # validation is the test split


@pytest.mark.parametrize("layout", LAYOUTS)
def test_aokvqa_direct_answers_are_aliases_of_a_free_form_question(tmp_path, layout):
    problems, _, _ = ingested(tmp_path, "aokvqa", save("aokvqa", tmp_path, layout),
                              columns={"choices": "no_such_column", "answer": "direct_answers"})
    train = by_id(problems)["22MexNkBPpdZGX6sxbxVBH"]
    assert train["answer_type"] == "free_form" and train["answer"] == "cab"
    assert sorted(train["aliases"]) == ["ride", "taxi"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_clevr_cogent_r1(tmp_path, layout):
    problems, _, _ = ingested(tmp_path, "clevr_cogent", save("clevr_cogent", tmp_path, layout))
    rows = problems.sort("question").to_dicts()
    assert [(r["question"], r["answer"], r["answer_type"], r["split"]) for r in rows] == [
        ("How many items are there in the image?", "3", "numeric", "train"),
        ("What number of purple metallic balls are there?", "0", "numeric", "train")]
    assert rows[0]["solution"] == "I count two cubes and one sphere."  # the R1 trace, tags dropped
    ood, _, _ = ingested(tmp_path / "valb", "clevr_cogent", save("clevr_cogent", tmp_path / "valb", layout),
                         splits={"train": "test"})  # ValA / ValB ship as `train`
    assert set(ood["split"]) == {"test"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sat(tmp_path, layout):
    problems, _, data = ingested(tmp_path, "sat", save("sat", tmp_path, layout))
    assert sorted(problems["split"]) == ["test", "train", "val"]  # `static` repeats train: not read
    val = problems.filter(pl.col("split") == "val").row(0, named=True)
    assert (val["choices"], val["answer"], val["answer_index"]) == (["left", "right"], "right", 1)
    assert val["topic"] == "other" and data.image(val["image_sha"]).exists()  # the first of the images


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cvbench(tmp_path, layout):
    problems, _, _ = ingested(tmp_path, "cvbench", save("cvbench", tmp_path, layout))
    p = by_id(problems)
    assert (p["0"]["answer"], p["0"]["answer_index"], p["0"]["topic"], p["0"]["category"], p["0"]["origin"]) == (
        "1", 2, "Count", "2D", "ADE20K")
    assert (p["1"]["answer"], p["1"]["split"]) == ("chair", "test")


def test_mathvista_release_layout_with_bard_captions_and_ocr(tmp_path):
    problems, rejects, data = ingested(tmp_path, "mathvista", mathvista_release(tmp_path))
    p = by_id(problems)
    assert set(p) == {"1", "2", "3", "12", "20"} and rejects.is_empty()
    assert p["1"]["caption"] == "A spring-mass system on a frictionless surface.\nText in the image: The spring force does, k"
    assert p["2"]["caption"] == "A measuring cup of flour." and p["3"]["caption"] is None
    assert all(data.image(r["image_sha"]).exists() for r in p.values())
    assert (p["1"]["precision"], p["3"]["answer_index"], p["1"]["origin"]) == (1, 2, "SciBench")


def test_files_with_a_mapping_images_by_path_or_bytes_and_rejects(tmp_path):

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png("red"))
    rows = [{"qid": "q1", "q": "What colour?", "opts": ["red", "blue"], "gold": "A", "pic": "imgs/a.png"},
            {"qid": "q2", "q": "How many?", "gold": "4", "pic": "imgs/missing.png", "cap": "Four dots."},
            {"qid": "q3", "q": "How many?", "gold": "5", "pic": "imgs/missing.png"},
            {"qid": "q4", "q": "Which?", "opts": ["x", "y"], "gold": "z"}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    pl.DataFrame([{"qid": "q5", "q": "Name it.", "gold": "cat", "pic": {"bytes": png("green"), "path": None}}]).write_parquet(
        tmp_path / "test.parquet")
    cols = {"id": "qid", "question": "q", "choices": "opts", "answer": "gold", "image": "pic", "caption": "cap"}
    problems, rejects, data = ingested(tmp_path, "files", tmp_path, columns=cols)
    p = by_id(problems)
    assert set(p) == {"q1", "q2", "q5"}
    assert (p["q1"]["answer_index"], p["q1"]["split"]) == (0, "train") and data.image(p["q1"]["image_sha"]).exists()
    assert p["q2"]["image_sha"] is None and p["q2"]["caption"] == "Four dots."  # missing image, caption kept
    assert (p["q5"]["split"], p["q5"]["answer_type"]) == ("test", "free_form") and p["q5"]["image_sha"]
    assert dict(zip(rejects["source_id"], rejects["reason"], strict=True)) == {
        "q3": "image_missing", "q4": "answer_not_in_choices", "train.jsonl:5": "malformed_row"}
    csv = tmp_path / "csv"
    csv.mkdir()
    pl.DataFrame({"question": ["2+2?"], "answer": ["4"]}).write_csv(csv / "problems.csv")
    problems, rejects, _ = ingested(tmp_path / "c", "files", csv / "problems.csv", split="val")
    assert problems.row(0, named=True)["split"] == "val" and problems["answer_type"].to_list() == ["numeric"]


def test_the_cli_takes_a_preset_name_and_a_path(tmp_path):
    from e2e import prefect_env, run_cli

    out, _ = run_cli(["ingest", "--source", "mathvista", "--path", str(mathvista_release(tmp_path)),
                      "--data-dir", str(tmp_path / "data")], prefect_env(tmp_path / "prefect"))
    assert out["problems"] == 5 and FactoryConfig.model_validate({"ingest": {"source": "cvbench"}})


MATHVISTA_OUTPUTS = {  # pid -> (what a model wrote, the verdict MathVista's scorer gives)
    "1": ("The spring stores the kinetic energy: 1/2 k d^2 = 1/2 m v^2, so d = 0.0115 m... The answer is 1.2", True),
    "2": ("The cup is marked up to 1000 g. Therefore the total volume is 1000.", True),
    "3": ("∠BOC = 90° + ∠A/2 = 145°, 所以答案是C", True),
    "12": ("Counting them, there are fewer metallic fighters than rubber objects.", True),
    "20": ("It has four equal sides, so it is a square.", False),
}


def test_import_mathvista_outputs_then_verify(tmp_path):
    """A MathVista-style output file ({pid: {..., response}}) imported for the mathvista source and verified:
    free-form text, integer, float with its precision and multiple choice graded as MathVista's scorer does."""
    from e2e import prefect_env, run_cli

    env, data_dir = prefect_env(tmp_path / "prefect"), str(tmp_path / "data")
    run_cli(["ingest", "--source", "mathvista", "--path", str(mathvista_release(tmp_path)), "--data-dir", data_dir], env)
    outputs = {pid: {"pid": pid, "model": "a-vlm", "response": text} for pid, (text, _) in MATHVISTA_OUTPUTS.items()}
    (tmp_path / "output_a-vlm.json").write_text(json.dumps(outputs, ensure_ascii=False))
    imported, _ = run_cli(["import-traces", "--file", str(tmp_path / "output_a-vlm.json"), "--teacher", "a-vlm",
                           "--source", "mathvista", "--data-dir", data_dir], env)
    assert imported["samples"] == 5 and imported["rejects"] == {}
    run_cli(["verify", "--data-dir", data_dir], env)
    data = DataDir(tmp_path / "data")
    verdicts = read_table(data.table("verdicts"), "verdicts").join(
        read_table(data.table("problems"), "problems").select("problem_id", "source_id"), on="problem_id")
    got = dict(zip(verdicts["source_id"], verdicts["correct"], strict=True))
    assert got == {pid: expected for pid, (_, expected) in MATHVISTA_OUTPUTS.items()}

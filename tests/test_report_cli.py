"""Planted outcomes through `distillery report`: evals written with the declared schema into a data
directory, the report read back (report.md and summary.json), and the distill round teacher chosen
from the same evals."""

import json
import subprocess

import pytest
import yaml
from e2e import CLI, ROOT, prefect_env
from statsmodels.stats.multitest import multipletests
from test_reports import evals
from test_verdicts import planted

from schemas.config import FactoryConfig
from schemas.experiment import HYPOTHESES
from schemas.paths import DataDir
from schemas.tables import write_table
from students.rounds import round_teacher

pytestmark = pytest.mark.slow
N = 100  # test problems; val has as many


def first(k: int, n: int = N) -> list[bool]:
    return [i < k for i in range(n)]


def planted_run(data: DataDir) -> dict:
    """Test: teacher_answer 60% > raw 40% (20/0), raw vs answer_only 4/0, reference 30%; val ranks
    raw-lora first (70%), so H3.6 and the round teacher use raw-lora although test favours teacher_answer."""
    test = {"raw-lora": ("raw", first(40)), "teacher_answer-lora": ("teacher_answer", first(60)),
            "answer_only-lora": ("answer_only", [4 <= i < 40 for i in range(N)])}
    val = {"raw-lora": first(70), "teacher_answer-lora": first(50), "answer_only-lora": first(30)}
    for name, (arm, correct) in test.items():
        frame = evals(name, arm, "lora", correct).vstack(evals(name, arm, "lora", val[name], split="val"))
        write_table(frame, data.evals("planted") / f"{name}.parquet", "evals")
    ref = evals("reference:big", "reference", "zero-shot", first(30)).vstack(
        evals("reference:big", "reference", "zero-shot", first(30), split="val"))
    write_table(ref, data.evals("planted") / "reference-big.parquet", "evals")
    return {"run": "planted", "arms": {"arms": ["raw", "teacher_answer", "answer_only"]},
            "train": {"methods": ["lora"]}, "evaluate": {"baseline": False},
            "reference": [{"name": "big", "teacher": "openai", "model": "big-model"}]}


def pooled_run(data: DataDir) -> dict:
    """Three seeds, each raw vs answer_only 2/0 on different problems: weak alone, 6/0 pooled."""
    for seed in (0, 1, 2):
        frame = planted(2, 0, 40, ("raw", "answer_only"), seed=seed, offset=2 * seed)
        for (name,), part in frame.group_by("student"):
            write_table(part, data.evals("pooled") / f"{name}.parquet", "evals")
    return {"run": "pooled", "arms": {"arms": ["raw", "answer_only"]}, "train": {"methods": ["lora"],
            "seeds": [0, 1, 2]}, "evaluate": {"baseline": False}}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    data, env, out = DataDir(root / "data"), prefect_env(root / "prefect"), {}
    for build in (planted_run, pooled_run):
        cfg = build(data) | {"data_dir": str(data.root)}
        path = root / f"{cfg['run']}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        proc = subprocess.run([CLI, "report", "--config", str(path)], env=env, capture_output=True, text=True,
                              timeout=600, cwd=ROOT)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        folder = data.report(cfg["run"])
        out[cfg["run"]] = dict(text=(folder / "report.md").read_text(), config=FactoryConfig.from_yaml(path),
                               summary=json.loads((folder / "summary.json").read_text()), data=data)
    return out


def rows_of(summary: dict, hid: str) -> list[dict]:
    return [r for r in summary["hypotheses"] if r["hypothesis"] == hid]


def test_weak_evidence_is_inconclusive_and_strong_evidence_decides_with_holm_printed(reports):
    s, text = reports["planted"]["summary"], reports["planted"]["text"]
    (weak,), (strong,) = rows_of(s, "baseline"), rows_of(s, "H3.1")
    assert (weak["only_treatment"], weak["only_control"], weak["verdict"]) == (4, 0, "inconclusive")
    assert (strong["only_treatment"], strong["only_control"]) == (20, 0)
    assert strong["verdict"] == "contradicted"  # H3.1 predicts lower; teacher_answer is 20 points higher
    tested = [r for r in s["hypotheses"] if r["tested"]]
    assert s["family"] == len(tested) == 3 and "Holm-adjusted over the 3 tests" in text
    reference = multipletests([r["p_value"] for r in tested], method="holm")[1]
    assert [r["p_holm"] for r in tested] == pytest.approx(reference)
    for r in tested:
        assert f"| {r['p_value']:.3g} | {r['p_holm']:.3g} |" in text


def test_the_report_opens_with_the_answer_and_the_verdict_is_the_second_column(reports):
    text = reports["planted"]["text"]
    lines = text.splitlines()
    assert lines[2] == "## Answer" and lines[4].startswith("- **H3.1** (teacher_answer lower than raw): lora "
                                                           "**contradicted** +20.0%")
    assert "| hypothesis | verdict | method |" in text


def test_no_verdict_word_where_holm_exceeds_alpha_and_every_hypothesis_has_a_row(reports):
    for run in ("planted", "pooled"):
        s, text = reports[run]["summary"], reports[run]["text"]
        assert {h.id for h in HYPOTHESES} | {"H3.6"} <= {r["hypothesis"] for r in s["hypotheses"]}
        section = text.split("| hypothesis | verdict |")[1].split("\n\n")[0]
        table = section.splitlines()[2:]  # past the header's rest and the rule
        assert len(table) == len(s["hypotheses"])
        for line, r in zip(table, s["hypotheses"], strict=True):
            verdict = line.split(" | ")[1]
            if r["p_holm"] is None or r["p_holm"] > s["alpha"]:
                assert "supported" not in verdict and "contradicted" not in verdict, line
    not_tested = {r["hypothesis"]: r["verdict"] for r in reports["planted"]["summary"]["hypotheses"]}
    assert not_tested["H3.3"] == "not tested: teacher_cot not trained: not in arms.arms"


def test_chosen_on_val_reported_on_test_for_h36_and_the_round_teacher(reports):
    s = reports["planted"]["summary"]
    (h36,) = rows_of(s, "H3.6")
    assert h36["treatment"] == "raw-lora (best on val: 70.0%)" and h36["control"] == "reference:big"
    assert (h36["only_treatment"], h36["only_control"], h36["verdict"]) == (10, 0, "supported")
    chosen = round_teacher(reports["planted"]["config"], reports["planted"]["data"])
    assert (chosen["student"], chosen["split"], chosen["on_val"]) == ("raw-lora", "val", True)
    assert chosen["accuracy"] == pytest.approx(0.7)


def test_three_weak_seeds_pool_into_one_supported_verdict(reports):
    s, text = reports["pooled"]["summary"], reports["pooled"]["text"]
    (row,) = rows_of(s, "baseline")
    assert (row["seeds"], row["only_treatment"], row["only_control"], row["verdict"]) == ([0, 1, 2], 6, 0, "supported")
    assert row["p_value"] == pytest.approx(2 / 2**6) and s["family"] == 1
    assert "s0 +5.0%, s1 +5.0%, s2 +5.0% (sd 0.0%)" in text

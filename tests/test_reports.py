"""The report files and tables: students, hypotheses, H3.6 and the views, from planted evals."""

import json

import numpy as np
import polars as pl
import pytest

from reports.report import ReportInputs, write_report
from schemas.config import ReportConfig
from schemas.experiment import HYPOTHESES
from schemas.tables import SCHEMAS


def evals(student, arm, method, correct, seed=0, style="cot", decoding="greedy", index=0, reasoning=None,
          split="test", variant=None, tool_calls=None):
    n = len(correct)
    return pl.DataFrame(dict(run=["r"] * n, student=[student] * n, arm=[arm] * n, method=[method] * n,
                             seed=[None if arm in ("base", "reference") else seed] * n,
                             problem_id=[f"{split[0]}{i}" if split != "test" else f"p{i}" for i in range(n)],
                             split=[split] * n, prompt_style=[style] * n,
                             decoding=[decoding] * n, sample_index=[index] * n, response=["x"] * n, reasoning=[None] * n,
                             extracted=["A"] * n, correct=correct, grader=["choice_index"] * n, found_by=["marker"] * n,
                             finished=[True] * n, variant=[variant] * n, prompt_tokens=[9] * n,
                             generated_tokens=[3] * n, latency_s=[0.5] * n, cost_usd=[0.0] * n,
                             reasoning_score=[None] * n, reasoning_correct=reasoning or [None] * n,
                             reasoning_judge=[None] * n, eval_fingerprint=["f"] * n,
                             tool_calls=tool_calls or [None] * n), schema=SCHEMAS["evals"])


def report(tmp_path, ev, problems=None, metas=None, cfg=None, **inputs):
    problems = problems if problems is not None else pl.DataFrame(schema=SCHEMAS["problems"])
    path = write_report(tmp_path, ReportInputs(run="r", evals=ev, problems=problems, metas=metas or {}, **inputs),
                        cfg or ReportConfig())
    return path.read_text(), json.loads((tmp_path / "summary.json").read_text())


def test_report_files(tmp_path):
    ev = pl.concat([evals("raw-lora", "raw", "lora", [True] * 5 + [False] * 35),
                    evals("teacher_answer-lora", "teacher_answer", "lora", [True] * 38 + [False] * 2),
                    evals("base", "base", "none", [False] * 40)])
    metas = {"raw-lora": {"train_examples": 7, "wall_s": 1.5, "train_tokens": 100}}
    problems = pl.DataFrame({"problem_id": [f"p{i}" for i in range(40)], "topic": ["maps"] * 10 + ["verbs"] * 30},
                            schema_overrides={}).join(pl.DataFrame(schema=SCHEMAS["problems"]).drop("topic"),
                                                      on="problem_id", how="left")
    text, summary = report(tmp_path, ev, problems, metas, teacher_tokens={"teacher_answer": 1234})
    assert "| raw-lora | raw | lora | 0 | 12.5% |" in text
    assert "| topic | " not in text and "| student | maps | verbs |" in text
    assert "| raw-lora | 50.0% [23.7%, 76.3%] n=10 | 0.0% [0.0%, 11.4%] n=30 |" in text  # Wilson, never [0, 0]
    h = summary["hypotheses"][0]
    assert (h["hypothesis"], h["treatment"], h["control"], h["direction"]) == ("H3.1", "teacher_answer", "raw", "lower")
    assert h["verdict"] == "contradicted" and h["difference"] == pytest.approx(33 / 40)  # the plan predicted lower
    assert {s["student"]: s["teacher_tokens"] for s in summary["students"]}["teacher_answer-lora"] == 1234
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html and "<table>" in html


def test_plots_of_students_all_wrong_or_all_right_at_small_n(tmp_path):
    """Wilson bounds at 0/3 and 3/3 sit on the estimate: the error bars must not go negative."""
    ev = pl.concat([evals("raw-lora", "raw", "lora", [False] * 3), evals("answer_only-lora", "answer_only", "lora",
                                                                        [True] * 3)])
    _, summary = report(tmp_path, ev)
    assert {p.name for p in tmp_path.iterdir()} >= {"accuracy.png", "hypotheses.png"}
    assert {s["student"]: s["ci_low"] for s in summary["students"]}["raw-lora"] == 0.0


def test_unjudgeable_answers_leave_accuracy_and_pairing_alone(tmp_path):
    treat = evals("teacher_answer-lora", "teacher_answer", "lora", [True, True, None, False])
    control = evals("raw-lora", "raw", "lora", [False, True, False, False])
    _, summary = report(tmp_path, pl.concat([treat, control]))
    row = {s["student"]: s for s in summary["students"]}["teacher_answer-lora"]
    assert (row["n"], row["accuracy"]) == (3, pytest.approx(2 / 3))
    assert summary["hypotheses"][0]["difference"] == pytest.approx(1 / 3)  # p0, p1, p3 paired: (2 - 1) / 3


PLANTS = {"clearly_higher": ([True] * 45 + [False] * 15, [True] * 10 + [False] * 50),
          "clearly_lower": ([True] * 10 + [False] * 50, [True] * 45 + [False] * 15),
          "equal": ([True, False] * 30, [True, False] * 30)}


@pytest.mark.parametrize("hypothesis", [h for h in HYPOTHESES])
@pytest.mark.parametrize("plant", list(PLANTS))
def test_planted_outcomes_give_verdicts_relative_to_the_prediction(tmp_path, hypothesis, plant):
    """Evals where the treatment is clearly worse than the control support a claim that predicts
    `lower` and contradict one that predicts `higher`; equal outcomes are inconclusive."""
    treat, control = PLANTS[plant]
    ev = pl.concat([evals(f"{hypothesis.treatment}-lora", hypothesis.treatment, "lora", treat),
                    evals(f"{hypothesis.control}-lora", hypothesis.control, "lora", control)])
    _, summary = report(tmp_path, ev)
    row = next(h for h in summary["hypotheses"] if h["hypothesis"] == hypothesis.id)
    expected = {"equal": "inconclusive",
                "clearly_higher": "supported" if hypothesis.direction == "higher" else "contradicted",
                "clearly_lower": "supported" if hypothesis.direction == "lower" else "contradicted"}[plant]
    assert row["verdict"] == expected
    assert (row["treatment"], row["control"]) == (hypothesis.treatment, hypothesis.control)


def test_the_plans_controls():
    controls = {h.id: (h.treatment, h.control, h.direction) for h in HYPOTHESES}
    assert controls["H3.1"] == ("teacher_answer", "raw", "lower")
    assert controls["H3.2"] == ("raw_plus_teacher", "raw", "lower")
    assert controls["H3.3"] == ("teacher_cot", "teacher_answer", "higher")
    assert controls["H3.4"] == ("teacher_lecture", "teacher_answer", "higher")
    assert controls["H3.5"] == ("mistakes", "teacher_lecture", "higher")


def test_holm_family_seeds_pooled_and_users_own_hypothesis(tmp_path):
    from schemas.config import HypothesisConfig

    rng = np.random.default_rng(5)
    frames = []
    for seed in (0, 1, 2):
        frames += [evals(f"raw-lora{'-s' + str(seed) if seed else ''}", "raw", "lora", list(rng.random(50) < 0.7), seed),
                   evals(f"answer_only-lora{'-s' + str(seed) if seed else ''}", "answer_only", "lora",
                         list(rng.random(50) < 0.3), seed)]
    mine = HypothesisConfig(id="U1", claim="answers alone are worse", treatment="answer_only", control="raw",
                            direction="lower")
    text, summary = report(tmp_path, pl.concat(frames), cfg=ReportConfig(hypotheses=[mine]))
    tested = [r for r in summary["hypotheses"] if r["tested"]]
    assert {(r["hypothesis"], r["method"]) for r in tested} == {("baseline", "lora"), ("U1", "lora")}
    assert summary["family"] == 2 and "Holm-adjusted over the 2 tests" in text
    assert "- **H3.4** (teacher_lecture higher than teacher_answer): lora not tested: teacher_lecture not trained" in text
    assert all(r["seeds"] == [0, 1, 2] and r["n"] == 150 and len(r["per_seed"]) == 3 for r in tested)
    from statsmodels.stats.multitest import multipletests

    assert [r["p_holm"] for r in tested] == pytest.approx(multipletests([r["p_value"] for r in tested],
                                                                        method="holm")[1])
    assert all(r["verdict"] == "supported" for r in tested)
    not_tested = {r["hypothesis"]: r["verdict"] for r in summary["hypotheses"] if not r["tested"]}
    assert set(not_tested) == {h.id for h in HYPOTHESES if h.id != "baseline"} | {"H3.6", "H1", "H2"}
    assert not_tested["H1"] == "not tested: needs evaluate.tools (students answering with the caption and lecture tools)"
    assert not_tested["H2"].startswith("not tested: needs a `vlm` student trained with `prompt_tuning`")
    assert not_tested["H3.3"] == "not tested: teacher_cot not trained: not in this run"
    seeds = summary["seeds"]
    assert {(s["arm"], s["seeds"]) for s in seeds} == {("raw", 3), ("answer_only", 3)}
    raw = [s["accuracy"] for s in summary["students"] if s["arm"] == "raw"]
    assert next(s for s in seeds if s["arm"] == "raw")["sd"] == pytest.approx(np.std(raw, ddof=1))
    assert "### Across training seeds" in text


def test_h36_best_arm_chosen_on_val_against_a_reference_with_costs_and_leaderboard(tmp_path):
    from schemas.config import LeaderboardEntry

    test = [evals("raw-lora", "raw", "lora", [True] * 20 + [False] * 20),
            evals("teacher_cot-lora", "teacher_cot", "lora", [True] * 30 + [False] * 10),
            evals("reference:big", "reference", "zero-shot", [True] * 10 + [False] * 30).with_columns(
                cost_usd=pl.lit(0.001))]
    val = [evals("raw-lora", "raw", "lora", [True] * 5 + [False] * 15, split="val"),
           evals("teacher_cot-lora", "teacher_cot", "lora", [True] * 15 + [False] * 5, split="val")]
    metas = {"teacher_cot-lora": {"train_examples": 9, "wall_s": 12.5, "train_tokens": 4000, "device": "cpu"}}
    cfg = ReportConfig(leaderboard=[LeaderboardEntry(name="SOTA", accuracy=0.9, source="paper")], device_hour_usd=3.6)
    text, summary = report(tmp_path, pl.concat(test + val), metas=metas, cfg=cfg, teacher_tokens={"teacher_cot": 777},
                           teacher_usd={"teacher_cot": 0.5})
    h36 = next(h for h in summary["hypotheses"] if h["hypothesis"] == "H3.6")
    assert h36["treatment"] == "teacher_cot-lora (best on val: 75.0%)" and h36["control"] == "reference:big"
    assert h36["verdict"] == "supported" and h36["difference"] == pytest.approx(0.5)
    # $0.001 per device-second: training 12.5 s, 40 answers of 0.5 s, teacher data $0.5 -> $0.5325 in all
    assert ("| teacher_cot-lora | 75.0% | 40 | 777 | $0.5000 | 12.50 | $0.0125 | cpu | 3 | 250.00 | "
            "0.50 (device-seconds, batch-amortised) | $0.5325 | 141 | $0.000500 |") in text
    assert ("| reference:big | 25.0% | 40 | n/a | n/a | n/a | n/a | n/a | 3 | 83.33 | 0.50 (per request) | $0.0400 | "
            "625 | $0.001000 |") in text  # a reference is not tuned: its cost is its answers
    assert "| SOTA | 90.0% | paper |" in text and "never used in a verdict" in text
    _, alone = report(tmp_path / "no-val", pl.concat(test), cfg=ReportConfig())  # no val: chosen on test, no verdict
    local = {s["student"]: s for s in alone["students"]}["teacher_cot-lora"]
    assert local["answer_usd"] is None and local["total_usd"] is None  # no device price: n/a, not $0
    h36 = next(h for h in alone["hypotheses"] if h["hypothesis"] == "H3.6")
    assert h36["verdict"].startswith("exploratory") and h36["p_holm"] is None and not h36["tested"]


def test_views_cot_vs_direct_pass_at_k_and_answer_vs_reasoning(tmp_path):
    from tasks.select import pass_at_k

    rng = np.random.default_rng(3)
    samples = [list(rng.random(30) < 0.4) for _ in range(4)]
    ev = pl.concat([evals("raw-lora", "raw", "lora", [True] * 18 + [False] * 12,
                          reasoning=[True] * 10 + [False] * 8 + [True] * 5 + [False] * 7),
                    evals("raw-lora", "raw", "lora", [True] * 9 + [False] * 21, style="direct"),
                    *(evals("raw-lora", "raw", "lora", c, decoding="sampled", index=i) for i, c in enumerate(samples))])
    text, summary = report(tmp_path, ev)
    assert summary["cot_vs_direct"][0]["cot_minus_direct"] == pytest.approx(0.3)
    per_problem = np.array(samples).T  # (problems, k)
    for j in (1, 2, 4):
        ref = np.mean([pass_at_k(4, int(row.sum()), j) for row in per_problem])
        cell = summary["pass_at_k"][0][f"pass@{j}"]
        assert cell["accuracy"] == pytest.approx(ref) and cell["n"] == 30 and cell["ci_low"] <= ref <= cell["ci_high"]
    two = summary["answer_vs_reasoning"][0]
    assert (two["both_right"], two["answer_right_reasoning_wrong"], two["answer_wrong_reasoning_right"],
            two["both_wrong"]) == (10, 8, 5, 7)
    for section in ("## Chain of thought vs direct answering", "## pass@k", "## Answer vs reasoning accuracy"):
        assert section in text
    assert {"accuracy.png", "pass_at_k.png", "answer_vs_reasoning.png"} <= {
        p.name for p in tmp_path.iterdir()}


def test_scienceqa_breakdowns(tmp_path):
    problems = pl.DataFrame(dict(problem_id=[f"p{i}" for i in range(4)], source="scienceqa",
                                 subject=["natural science", "social science", "language science", "natural science"],
                                 grade=["grade2", "grade7", "grade12", "grade5"], image_sha=["x", None, None, None],
                                 hint=["", "a map", "", ""]), schema_overrides={}).join(
        pl.DataFrame(schema=SCHEMAS["problems"]).drop("source", "subject", "grade", "image_sha", "hint"),
        on="problem_id", how="left")
    _, summary = report(tmp_path, evals("raw-lora", "raw", "lora", [True, False, True, False]), problems)
    b = summary["breakdowns"]
    def accuracies(rows):
        return [{k: v["accuracy"] if isinstance(v, dict) else v for k, v in r.items()} for r in rows]

    assert accuracies(b["scienceqa_subject"]) == [{"student": "raw-lora", "LAN": 1.0, "NAT": 0.5, "SOC": 0.0}]
    assert accuracies(b["scienceqa_context"]) == [{"student": "raw-lora", "IMG": 1.0, "NO": 0.5, "TXT": 0.0}]
    assert accuracies(b["scienceqa_grade"]) == [{"student": "raw-lora", "G1-6": 0.5, "G7-12": 0.5}]
    assert b["scienceqa_grade"][0]["G7-12"]["n"] == 2


def test_costs_per_stage_and_arm_from_the_tables(tmp_path):
    from reports.stages import stage_costs, teacher_usd_per_arm
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from schemas.tables import SCHEMAS, write_table

    cfg = FactoryConfig.model_validate({"sample": {"teacher": "openai", "model": "gpt-4o-mini"}})
    rows = [dict(sample_id=f"s{i}", problem_id="p", teacher="openai/gpt-4o-mini", model="gpt-4o-mini",
                 variant=v, sample_index=i, request_key="k", prompt="", reasoning=None, content="", finish_reason="stop",
                 prompt_tokens=1000, completion_tokens=500, latency_s=0.1, cost_usd=0.0015)
            for i, v in enumerate(["plain", "plain", "lecture"])]
    samples = pl.DataFrame(rows, schema=SCHEMAS["samples"])
    data = DataDir(tmp_path)
    write_table(pl.DataFrame([dict(problem_id="p", image_sha="x", captioner="gemini", caption="c", prompt_tokens=300,
                                   completion_tokens=40, cost_usd=None)], schema=SCHEMAS["captions"]),
                data.table("captions") / "gemini" / "s.parquet", "captions")
    costs = stage_costs(data, samples)
    assert costs == [dict(stage="caption", model="gemini", answers=1, tokens_in=300, tokens_out=40, cost_usd=None),
                     dict(stage="sample", model="openai/gpt-4o-mini", answers=3, tokens_in=3000, tokens_out=1500,
                          cost_usd=0.0045)]
    per_arm = teacher_usd_per_arm(cfg, samples)
    assert per_arm["teacher_cot"] == pytest.approx(0.003) and per_arm["teacher_lecture"] == pytest.approx(0.0015)
    text, _ = report(tmp_path / "r", pl.DataFrame(schema=SCHEMAS["evals"]), costs=costs, teacher_usd=per_arm)
    assert "| sample | openai/gpt-4o-mini | 3 | 3000 | 1500 | $0.004500 |" in text and "| caption | gemini | 1 | 300 | 40 | n/a |" in text


def test_pipeline_counts_pass_at_k_per_teacher_and_copies(tmp_path):
    from reports.stages import pipeline_counts, teacher_usd_per_arm
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from schemas.tables import SCHEMAS, empty, write_table

    data = DataDir(tmp_path)
    sel = [dict(problem_id=p, teacher=t, variant="plain", policy="shortest_correct", sample_id=None, reasoning=None,
                content=None, n_samples=4, n_correct=c, pass_at_1=c / 4, pass_at_k=float(c > 0))
           for p, t, c in [("p1", "a", 4), ("p2", "a", 0), ("p1", "b", 1)]]
    write_table(pl.DataFrame(sel, schema=SCHEMAS["selected"]), data.table("selected") / "x.parquet", "selected")
    write_table(pl.DataFrame([dict(problem_id="p1", match_id="q", match_split="test", score=100.0, kind="text",
                                   source="aokvqa", match_source="cvbench")],
                             schema=SCHEMAS["contamination"]), data.table("contamination") / "flags.parquet",
                "contamination")
    counts = pipeline_counts(FactoryConfig(), data, empty("problems"), empty("samples"))
    assert counts["teacher pass@1 / pass@k (a, plain, 2 problems)"] == "0.500 / 0.500"
    assert counts["teacher pass@1 / pass@k (b, plain, 1 problems)"] == "0.250 / 1.000"
    assert counts["training problems copying a val/test problem"] == ("1 (left out of the arms); by source: "
                                                                       "aokvqa vs cvbench: 1")
    cfg = FactoryConfig.model_validate({"arms": {"teacher": "b", "decontaminate": False}})
    assert pipeline_counts(cfg, data, empty("problems"), empty("samples"))[
        "training problems copying a val/test problem"].startswith("1 (kept: arms.decontaminate is off)")
    priced = pl.DataFrame([dict(sample_id="s", problem_id="p1", teacher="b", model="m", variant="plain", sample_index=0,
                                request_key="k", prompt=None, reasoning=None, content="", finish_reason="stop",
                                prompt_tokens=None, completion_tokens=None, latency_s=None, cost_usd=0.25)],
                          schema=SCHEMAS["samples"])
    assert teacher_usd_per_arm(cfg, priced)["teacher_cot"] == 0.25  # arms.teacher's samples, not sample's


def test_exact_mcnemar_equals_scipy_binomtest_on_the_discordant_pairs():
    from scipy.stats import binomtest

    from reports.stats import discordant, mcnemar_p

    rng = np.random.default_rng(0)
    for n in (1, 5, 18, 60, 200):
        for _ in range(20):
            a, b = rng.random(n) < rng.random(), rng.random(n) < rng.random()
            k, c = discordant(a, b)
            ref = binomtest(k, k + c, 0.5).pvalue if k + c else 1.0
            assert mcnemar_p(k, c) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_holm_against_its_definition():
    from reports.stats import holm

    rng = np.random.default_rng(1)
    for m in (1, 2, 5, 9):
        p = list(rng.random(m) ** 3)
        ref = [min(1.0, max((m - j) * sorted(p)[j] for j in range(sorted(p).index(x) + 1))) for x in p]
        assert holm(p) == pytest.approx(ref)


def test_mcnemar_power_against_simulation_and_detectable_difference_is_the_threshold():
    from reports.stats import detectable_difference, discordant, mcnemar_p, mcnemar_power

    rng = np.random.default_rng(2)
    n, p10, p01 = 40, 0.25, 0.05
    sims = 4000
    cats = rng.choice(4, size=(sims, n), p=[p10, p01, 0.35, 0.35])  # (right, wrong), (wrong, right), both, neither
    hits = 0
    for row in cats:
        a, b = (row == 0) | (row == 2), (row == 1) | (row == 2)
        hits += mcnemar_p(*discordant(a, b)) <= 0.05
    assert mcnemar_power(n, p10, p01, 0.05) == pytest.approx(hits / sims, abs=0.025)
    delta = detectable_difference(100, 0.3, 0.05, 0.8)
    pd = 0.3
    assert mcnemar_power(100, (pd + delta) / 2, (pd - delta) / 2, 0.05) >= 0.8
    smaller = delta - 0.01
    assert mcnemar_power(100, (pd + smaller) / 2, (pd - smaller) / 2, 0.05) < 0.8
    assert detectable_difference(400, 0.3, 0.05, 0.8) < delta  # more problems, finer decisions
    assert discordant([1, 1, 0, 0], [1, 0, 1, 0]) == (1, 1)


def test_rouge_l_against_a_dynamic_programming_reference():
    from hypothesis import given
    from hypothesis import strategies as st

    from students.evals import rouge_l

    def lcs(x, y):
        t = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
        for i in range(len(x)):
            for j in range(len(y)):
                t[i + 1][j + 1] = t[i][j] + 1 if x[i] == y[j] else max(t[i][j + 1], t[i + 1][j])
        return t[-1][-1]

    words = st.lists(st.sampled_from(["a", "b", "c", "mass", "left", "Right"]), max_size=12)

    @given(words, words)
    def check(c, r):
        x, y = [w.lower() for w in c], [w.lower() for w in r]
        n = lcs(x, y)
        ref = 0.0 if not x or not y or n == 0 else 2 * (n / len(x)) * (n / len(y)) / (n / len(x) + n / len(y))
        assert rouge_l(" ".join(c), " ".join(r)) == pytest.approx(ref)

    check()


def test_grpo_sft_and_sft_then_grpo_side_by_side_per_arm_and_accuracy_by_source(tmp_path):
    """The methods view pivots greedy accuracy by arm and method; the source breakdown separates an
    out-of-distribution test source (brute-force means as reference)."""
    rng = np.random.default_rng(5)
    runs = {(arm, method): list(rng.random(20) < rng.random()) for arm in ("raw", "teacher_cot")
            for method in ("lora", "grpo", "lora+grpo")}
    ev = pl.concat([evals(f"{arm}-{method}", arm, method, c) for (arm, method), c in runs.items()])
    problems = pl.DataFrame(dict(problem_id=[f"p{i}" for i in range(20)] + ["t0"],
                                 source=["scienceqa"] * 12 + ["mathvista"] * 8 + ["scienceqa"],
                                 split=["test"] * 20 + ["train"])).join(
        pl.DataFrame(schema=SCHEMAS["problems"]).drop("source", "split"), on="problem_id", how="left")
    text, summary = report(tmp_path, ev, problems)
    table = {r["arm"]: r for r in summary["methods"]}
    for (arm, method), c in runs.items():
        assert table[arm][method]["accuracy"] == pytest.approx(sum(c) / len(c)) and table[arm][method]["n"] == 20
        by_source = next(r for r in summary["breakdowns"]["source"] if r["student"] == f"{arm}-{method}")
        assert by_source["mathvista"]["accuracy"] == pytest.approx(sum(c[12:]) / 8)
        assert by_source["scienceqa"]["accuracy"] == pytest.approx(sum(c[:12]) / 12)
    assert "## Training methods per arm" in text and "## Accuracy by source" in text
    assert "| student | mathvista | scienceqa (trained on) |" in text  # only scienceqa has training problems


def test_h34_compares_both_sides_with_the_lecture_and_the_students_table_keeps_each_own_context(tmp_path):
    """teacher_answer is evaluated without (its own) and with the lecture (H3.4's treatment's context): the
    H3.4 row pairs the two arms both asked with the lecture and says so; accuracy per student stays on its own
    prompt variant."""
    lecture = evals("teacher_lecture-lora", "teacher_lecture", "lora", [True] * 20 + [False] * 20)
    own = evals("teacher_answer-lora", "teacher_answer", "lora", [True] * 10 + [False] * 30)
    with_lecture = evals("teacher_answer-lora", "teacher_answer", "lora", [True] * 20 + [False] * 20)
    ev = pl.concat([lecture.with_columns(variant=pl.lit("lecture")), own.with_columns(variant=pl.lit("plain")),
                    with_lecture.with_columns(variant=pl.lit("lecture"))])
    text, summary = report(tmp_path, ev)
    h34 = next(h for h in summary["hypotheses"] if h["hypothesis"] == "H3.4")
    assert h34["context"] == "lecture" and h34["difference"] == 0.0 and h34["n"] == 40  # like with like
    assert {s["student"]: s["accuracy"] for s in summary["students"]}["teacher_answer-lora"] == 0.25
    assert "| H3.4 | **inconclusive** | lora | teacher_lecture | teacher_answer | the lecture | higher |" in text


def test_each_arm_is_evaluated_under_the_contexts_its_hypotheses_need():
    from schemas.config import FactoryConfig
    from students.stages import BASE, eval_variants

    cfg = FactoryConfig()
    need = {arm: eval_variants(cfg, arm) for arm in [*cfg.arms.arms, BASE, "reference"]}
    assert need["teacher_answer"] == ["plain", "lecture"]  # H3.4's control, asked as its treatment is too
    assert need["teacher_lecture"] == need["mistakes"] == ["lecture"]
    assert need["raw"] == need[BASE] == ["plain"] and need["reference"] == ["plain", "lecture"]

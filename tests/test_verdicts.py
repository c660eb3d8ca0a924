"""The verdicts: the exact test decides, seeds pool, the family is controlled, every declared
hypothesis has a row, and choices are made on val. Intervals and tests against statsmodels, scipy,
closed forms, brute force and simulation; planted evals through `distillery report`."""

import gc
import math

import numpy as np
import polars as pl
import pytest
from test_reports import evals

from reports.stats import mcnemar_p, paired_interval, wilson
from reports.verdicts import hypothesis_rows
from schemas.config import ReportConfig
from schemas.experiment import HYPOTHESES

NAMES = {"supported", "contradicted", "inconclusive"}


def test_wilson_against_its_closed_form_and_never_degenerate_at_small_n():
    z = 1.959963984540054
    for k, n in [(0, 15), (10, 10), (3, 7), (50, 100), (1, 1)]:
        p, half = k / n, z * math.sqrt(k / n * (1 - k / n) / n + z * z / (4 * n * n))
        centre, scale = p + z * z / (2 * n), 1 + z * z / n
        assert wilson(k, n, 0.95) == pytest.approx(((centre - half) / scale, (centre + half) / scale), abs=1e-9)
    assert wilson(10, 10, 0.95)[0] < 1 and wilson(0, 15, 0.95)[1] > 0


def test_the_paired_interval_excludes_zero_exactly_when_the_exact_test_rejects():
    """Brute force over every (b, c) with up to 60 discordant pairs, on 60 and 100 problems."""
    from scipy.stats import binomtest

    for n in (60, 100):
        for m in range(0, 61):
            for b in range(m + 1):
                lo, hi = paired_interval(b, m - b, n, 0.95)
                assert (lo > 0 or hi < 0) == (mcnemar_p(b, m - b) <= 0.05), (n, b, m - b)
                assert lo - 1e-12 <= (2 * b - m) / n <= hi + 1e-12
                if m:  # its q part is Clopper-Pearson: scipy's exact interval
                    ci = binomtest(b, m).proportion_ci(0.95, method="exact")
                    d_lo, d_hi = wilson(m, n, 0.95)
                    q_lo = 2 * ci.low - 1
                    assert lo == pytest.approx(q_lo * (d_lo if q_lo >= 0 else d_hi), abs=1e-9)


@pytest.mark.parametrize("n,p10,p01", [(100, 0.02, 0.02), (100, 0.1, 0.02), (30, 0.2, 0.05), (200, 0.05, 0.0),
                                       (50, 0.3, 0.3), (15, 0.1, 0.1)])
def test_the_paired_interval_covers_the_true_difference(n, p10, p01):
    rng = np.random.default_rng(7)
    tables = rng.multinomial(n, [p10, p01, 1 - p10 - p01], size=2000)
    covered = np.mean([lo <= p10 - p01 <= hi for lo, hi in (paired_interval(int(b), int(c), n, 0.95)
                                                            for b, c, _ in tables)])
    assert covered >= 0.95 - 0.01


def planted(b: int, c: int, n: int, arms=("teacher_answer", "raw"), seed=0, offset=0):
    """Two arms on n test problems with b problems only the first answers right, c only the second."""
    base = [i % 2 == 0 for i in range(n)]
    first, second = list(base), list(base)
    odd = [i for i in range(n) if i % 2]
    for i in odd[offset:offset + b]:
        first[i] = True
    for i in odd[offset + b:offset + b + c]:
        second[i] = True
    name = "" if seed == 0 else f"-s{seed}"
    return pl.concat([evals(f"{arms[0]}-lora{name}", arms[0], "lora", first, seed),
                      evals(f"{arms[1]}-lora{name}", arms[1], "lora", second, seed)])


def row(rows, hid, method="lora"):
    return next(r for r in rows if r["hypothesis"] == hid and r["method"] == method)


def test_the_verdict_is_the_exact_test_not_an_interval():
    """4/0 of 100 (exact p 0.125): inconclusive, its interval contains 0; 0/20: H3.1 predicts lower, supported."""
    cfg = ReportConfig()
    weak = row(hypothesis_rows(planted(4, 0, 100), ["lora"], {}, cfg), "H3.1")
    assert weak["p_value"] == pytest.approx(0.125) and weak["verdict"] == "inconclusive"
    assert weak["ci_low"] < 0 < weak["ci_high"]
    strong = row(hypothesis_rows(planted(0, 20, 100), ["lora"], {}, cfg), "H3.1")
    assert strong["verdict"] == "supported" and strong["ci_high"] < 0 and strong["needed"] is not None
    assert row(hypothesis_rows(planted(20, 0, 100), ["lora"], {}, cfg), "H3.1")["verdict"] == "contradicted"
    assert row(hypothesis_rows(planted(20, 0, 100), ["lora"], {}, cfg), "H3.1")["needed"] is None  # wrong way


def test_no_seed_in_the_verdict():
    """Nothing random is left in the report: the bootstrap and its seed are gone from the config."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="seed"):
        ReportConfig.model_validate({"seed": 3})
    runs = [hypothesis_rows(planted(3, 0, 15), ["lora"], {}, ReportConfig()) for _ in range(10)]
    assert all(r == runs[0] for r in runs)


def test_seeds_pool_into_one_verdict_with_per_seed_differences_beside():
    """Three seeds, each 2/0 (p 0.5 alone), on different problems: pooled 6/0, p = 2 / 2^6."""
    ev = pl.concat([planted(2, 0, 40, ("raw", "answer_only"), seed=s, offset=2 * s) for s in (0, 1, 2)])
    r = row(hypothesis_rows(ev, ["lora"], {}, ReportConfig()), "baseline")
    assert (r["n"], r["only_treatment"], r["only_control"], r["seeds"]) == (120, 6, 0, [0, 1, 2])
    assert r["p_value"] == pytest.approx(2 / 2**6) and r["verdict"] == "supported"
    assert [p["difference"] for p in r["per_seed"]] == pytest.approx([2 / 40] * 3) and r["seed_sd"] == pytest.approx(0)


def test_detectable_difference_uses_a_floor_on_discordance():
    """Two students that agree everywhere: the floor, not the observed 0%, sets the detectable difference."""
    same = planted(0, 0, 100)
    r = row(hypothesis_rows(same, ["lora"], {}, ReportConfig()), "H3.1")
    assert r["discordance"] == 0.1 and r["discordance_from"].startswith("floor")
    set_ = row(hypothesis_rows(same, ["lora"], {}, ReportConfig(discordance=0.3)), "H3.1")
    assert set_["discordance_from"].startswith("set") and set_["detectable"] > r["detectable"]


def test_every_declared_hypothesis_has_a_row_with_the_reason_when_not_tested():
    ev = pl.concat([planted(5, 1, 60, ("raw", "answer_only")),
                    *(evals(f"{a}-grpo", a, "grpo", [True, False] * 30) for a in ("raw", "answer_only",
                                                                                    "teacher_lecture",
                                                                                    "teacher_answer"))])
    why = {"teacher_lecture-lora": "built from the teacher's `lecture` samples, and sample.variants has no `lecture`",
           "teacher_cot": "no separate chain of thought"}
    rows = hypothesis_rows(ev, ["lora", "grpo"], why, ReportConfig())
    assert {(r["hypothesis"], r["method"]) for r in rows if r["hypothesis"] not in ("H3.6", "H1", "H2")} == {
        (h.id, m) for h in HYPOTHESES for m in ("lora", "grpo")}
    assert [r["verdict"] for r in rows if r["hypothesis"] in ("H1", "H2")] == [
        "not tested: needs evaluate.tools (students answering with the caption and lecture tools)",
        "not tested: needs a `vlm` student trained with `prompt_tuning` (train.student: vlm, train.methods: "
        "[prompt_tuning])"]
    assert row(rows, "baseline", "grpo")["verdict"] == ("not tested: same training data (grpo trains on the "
                                                        "arms' prompts, identical for these arms)")
    assert row(rows, "H3.4", "grpo")["tested"]  # lecture prompts differ from plain ones
    assert row(rows, "H3.4", "lora")["verdict"] == f"not tested: teacher_lecture not trained: {why['teacher_lecture-lora']}"
    assert row(rows, "H3.3", "lora")["verdict"] == "not tested: teacher_cot not trained: no separate chain of thought"
    assert row(rows, "baseline", "lora")["verdict"] in NAMES
    assert all(r["verdict"] for r in rows)
    from reports.render import answer

    lines = answer({"hypotheses": rows, "splits": {"report": "test", "select": None}, "family": 1, "alpha": 0.05})
    assert "- **H3.3** (teacher_cot higher than teacher_answer): every method not tested: teacher_cot not trained: " \
        "no separate chain of thought" in lines
    few = row(hypothesis_rows(planted(5, 0, 5, ("raw", "answer_only")), ["lora"], {}, ReportConfig()), "baseline")
    assert few["verdict"] == "not tested: too few problems (5 pairs: even all of them one way could not reach p <= 0.05)"


SIX = HYPOTHESES[:6]  # the null simulation's family: six hypotheses


def null_table(rng, n: int) -> pl.DataFrame:
    """The arms of six hypotheses with the same chance on each problem (problems differ in difficulty):
    no true difference."""
    difficulty = rng.random(n)
    arms = sorted({a for h in SIX for a in (h.treatment, h.control)})
    return pl.concat([evals(f"{a}-lora", a, "lora", list(rng.random(n) < difficulty)) for a in arms])


def test_null_simulation_family_wise_error_at_most_alpha():
    """1,000 planted tables with no true difference, the 6 declared hypotheses each: the share of
    tables with any supported or contradicted row stays within alpha + 0.02."""
    rng, cfg = np.random.default_rng(11), ReportConfig()
    wrong = 0
    gc.freeze()  # statsmodels' Holm runs gc.collect() on every call: leave the test's own objects out of it
    try:
        for _ in range(1000):
            rows = hypothesis_rows(null_table(rng, 60), ["lora"], {}, cfg)
            assert sum(r["tested"] for r in rows) == 6
            wrong += any(r["verdict"] in ("supported", "contradicted") for r in rows)
    finally:
        gc.unfreeze()
    assert wrong / 1000 <= cfg.alpha + 0.02


def printed_rows(text: str, hid: str) -> list[dict]:
    """The hypotheses table's rows of `hid` in report.md, cell by header."""
    section = text.split("\n| hypothesis | verdict |")[1].split("\n\n")[0]
    lines = ("| hypothesis | verdict |" + section).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]
    return [dict(zip(header, c, strict=True)) for c in cells if c[0] == hid]


def follows_printed_test(row: dict, alpha: float) -> None:
    """The printed verdict is what the printed numbers decide: the McNemar p of the printed discordant
    counts (scipy's exact binomial test), then the printed Holm p against alpha and the printed sign."""
    from scipy.stats import binomtest

    b, c = (int(x) for x in row["discordant (t/c)"].split("/"))
    assert float(row["McNemar p"]) == pytest.approx(binomtest(b, b + c).pvalue if b + c else 1.0, rel=1e-2)
    difference, holm_p = float(row["difference"].rstrip("%")), float(row["Holm p"])
    agrees = difference > 0 if row["predicted"] == "higher" else difference < 0
    word = "inconclusive" if holm_p > alpha else "supported" if agrees else "contradicted"
    assert row["verdict"] == f"**{word}**", row


H2_PLANTS = {"supported": ([True] * 40 + [False] * 20, [True] * 15 + [False] * 45),
             "contradicted": ([True] * 15 + [False] * 45, [True] * 40 + [False] * 20),
             "inconclusive": ([True, False] * 30, [False, True] * 30)}


@pytest.mark.parametrize("plant", list(H2_PLANTS))
def test_h2_soft_prompted_vlm_against_the_same_model_zero_shot_follows_its_printed_test(tmp_path, plant):
    """Two seeds of raw-prompt_tuning and one of teacher_answer-prompt_tuning (vlm students, both arms asked
    plain) against the base student on test: one H2 row per student, each over the 60 problems once (the
    base's answers are not counted once per seed, nor one arm's students in another's row), and each
    verdict is what its printed test decides."""
    from test_reports import report

    treat, zero = H2_PLANTS[plant]
    ev = pl.concat([evals("raw-prompt_tuning", "raw", "prompt_tuning", treat),
                    evals("raw-prompt_tuning-s1", "raw", "prompt_tuning", treat, seed=1),
                    evals("teacher_answer-prompt_tuning", "teacher_answer", "prompt_tuning", zero),
                    evals("base", "base", "none", zero)])
    metas = {s: {"arm": s.split("-")[0], "method": "prompt_tuning", "student_kind": "vlm"}
             for s in ("raw-prompt_tuning", "raw-prompt_tuning-s1", "teacher_answer-prompt_tuning")}
    text, summary = report(tmp_path, ev, metas=metas)
    h2 = {r["treatment"]: r for r in summary["hypotheses"] if r["hypothesis"] == "H2"}
    assert set(h2) == {"raw-prompt_tuning (vlm)", "raw-prompt_tuning-s1 (vlm)", "teacher_answer-prompt_tuning (vlm)"}
    assert all(r["control"] == "base" and r["n"] == 60 and r["tested"] for r in h2.values())
    assert h2["raw-prompt_tuning (vlm)"]["verdict"] == h2["raw-prompt_tuning-s1 (vlm)"]["verdict"] == plant
    assert h2["teacher_answer-prompt_tuning (vlm)"]["only_treatment"] == 0  # its answers are the base's
    printed = printed_rows(text, "H2")
    assert len(printed) == 3
    for one in printed:
        follows_printed_test(one, 0.05)


def test_h2_needs_a_vlm_prompt_tuning_student_and_the_base_zero_shot():
    ev = pl.concat([evals("raw-prompt_tuning", "raw", "prompt_tuning", [True] * 30),
                    evals("base", "base", "none", [False] * 30)])
    text_student = hypothesis_rows(ev, ["prompt_tuning"], {}, ReportConfig(), {"raw-prompt_tuning": "causal_lm"})
    assert row(text_student, "H2", "prompt_tuning")["verdict"].startswith("not tested: needs a `vlm` student")
    no_base = hypothesis_rows(ev.filter(pl.col("arm") != "base"), ["prompt_tuning"], {}, ReportConfig(),
                              {"raw-prompt_tuning": "vlm"})
    assert row(no_base, "H2", "prompt_tuning")["verdict"] == ("not tested: needs the same model zero-shot "
                                                             "(evaluate.baseline: true)")
    assert row(hypothesis_rows(ev, ["prompt_tuning"], {}, ReportConfig(), {"raw-prompt_tuning": "vlm"}), "H2",
               "prompt_tuning")["verdict"] == "supported"

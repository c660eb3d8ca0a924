"""verify --audit: the same samples graded by each grader, and where they disagree, so a user
sees how much the choice of verifier moves accuracy.

Graders: `rules` (the factory's: extraction + option index / numbers / exact match, then
mathruler and math-verify where only a parser can decide), `mathruler` alone (its
`grade_answer` on the extracted answer), `math_verify` alone (its `parse` / `verify` on the
whole response), and `judge` (the configured extraction model, then the rules) when one is set.
A grader's verdict is None where it cannot judge (math-verify on an option letter).
"""


import polars as pl

from tasks.extract import extract_free
from tasks.grade import Verdict
from tasks.prompts import LETTERS
from tasks.verify import HEAVY, grade_all, judge_extract

GRADERS = ("rules", "mathruler", "math_verify", "judge")


def mathruler_alone(response: str, golds: list[str]) -> Verdict:
    from mathruler.grader import grade_answer

    text, how = extract_free(response)
    ok = bool(text) and any(grade_answer(text, g) for g in golds)
    return Verdict(text, ok, "mathruler", how)


def math_verify_alone(response: str, golds: list[str]) -> Verdict:
    from math_verify import parse, verify

    pred = parse(response)
    return Verdict(str(pred[-1]) if pred else None, bool(pred) and any(verify(parse(g), pred) for g in golds),
                   "math_verify", "parse + verify on the whole response")


def golds_of(problem: dict) -> list[str]:
    """Gold answers as text: the option's letter and text for multiple choice, else answer and aliases."""
    if problem["answer_type"] == "multiple_choice":
        return [LETTERS[problem["answer_index"]], problem["answer"]]
    return [problem["answer"], *(problem.get("aliases") or [])]


def audit(samples: pl.DataFrame, problems: pl.DataFrame, cfg, judge=None) -> pl.DataFrame:
    """One row per sample: each grader's verdict (True / False / None)."""
    by_id = {p["problem_id"]: p for p in problems.iter_rows(named=True)}
    rows = [s for s in samples.iter_rows(named=True) if s["problem_id"] in by_id]
    items = [(s["content"], s["reasoning"], by_id[s["problem_id"]]) for s in rows]
    jobs = [(s["content"], golds_of(by_id[s["problem_id"]])) for s in rows]
    rules = grade_all(items, cfg)
    verdicts = {
        "rules": rules,
        "mathruler": HEAVY.run(jobs, cfg.time_limit_s, cfg.workers, mathruler_alone),
        "math_verify": HEAVY.run(jobs, cfg.time_limit_s, cfg.workers, math_verify_alone),
    }
    if judge is not None:
        verdicts["judge"] = [v or Verdict(None, False, "judge", "no answer") for v in judge_extract(cfg, judge, items)]
    mc = [by_id[s["problem_id"]]["answer_type"] == "multiple_choice" for s in rows]
    out = {"sample_id": [s["sample_id"] for s in rows], "problem_id": [s["problem_id"] for s in rows],
           "found_by": [v.found_by for v in rules],
           "answer_type": [by_id[s["problem_id"]]["answer_type"] for s in rows],
           "response": [s["content"][-300:] for s in rows], "gold": [by_id[s["problem_id"]]["answer"] for s in rows]}
    for name, vs in verdicts.items():
        out[name] = [None if (name == "math_verify" and m) or v.grader in ("timeout", "error") else v.correct
                     for v, m in zip(vs, mc, strict=True)]
    return pl.DataFrame(out, schema_overrides={g: pl.Boolean for g in verdicts}).with_columns(
        *(pl.lit(None, pl.Boolean).alias(g) for g in GRADERS if g not in verdicts))


def summary(df: pl.DataFrame) -> str:
    """Markdown: accuracy per grader on the samples it judged, agreement with the rules, disagreements."""
    graders = [g for g in GRADERS if g in df.columns and df[g].null_count() < df.height]
    lines = ["# verify --audit", "", f"{df.height} samples graded by each grader.", "",
             "| grader | judged | accuracy | differs from rules |", "|---|---|---|---|"]
    for g in graders:
        judged = df.filter(pl.col(g).is_not_null())
        both = judged.filter(pl.col("rules").is_not_null())
        differ = both.filter(pl.col(g) != pl.col("rules")).height
        acc = f"{100 * judged[g].mean():.1f}%" if judged.height else "n/a"
        lines.append(f"| {g} | {judged.height} | {acc} | {differ} |")
    counts = df.group_by("found_by").len().sort("len", descending=True)
    lines += ["", "## How the rules found the answers", "", "| found by | samples |", "|---|---|"]
    lines += [f"| {r['found_by']} | {r['len']} |" for r in counts.iter_rows(named=True)]
    others = [g for g in graders if g != "rules"]
    disagree = df.filter(pl.any_horizontal([(pl.col(g) != pl.col("rules")).fill_null(False) for g in others]))
    lines += ["", f"## Disagreements ({disagree.height})", "", "| problem | gold | " + " | ".join(graders)
              + " | response (end) |", "|---" * (len(graders) + 3) + "|"]
    for r in disagree.head(100).iter_rows(named=True):
        cells = " | ".join("" if r[g] is None else ("right" if r[g] else "wrong") for g in graders)
        tail = r["response"].replace("|", "/").replace("\n", " ")[-120:]
        lines.append(f"| {r['problem_id']} | {r['gold']} | {cells} | {tail} |")
    return "\n".join(lines) + "\n"

"""report.md from the report's summary (reports/report.py `analyse`)."""

import math

from reports.views import OVERLAP


def pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def usd(x: float | None) -> str:
    if x is None:
        return "unpriced"
    return f"${x:.6f}" if 0 < abs(x) < 0.01 else f"${x:.4f}"  # per-answer costs are often fractions of a cent


VERDICT_HELP = ("supported: the interval excludes 0 on the side the plan predicts; contradicted: it excludes 0 "
                "on the other side; inconclusive: it contains 0.")


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)]


def fmt(x) -> str:
    if isinstance(x, float):
        return pct(x)
    return "" if x is None else str(x)


def pipeline(s: dict) -> list[str]:
    lines = ["## Pipeline", "", *(f"- {k}: {v}" for k, v in s["counts"].items())]
    if s["costs"]:
        lines += ["", "## Costs", "", "What the data of this run cost to produce (cached answers were paid once).", "",
                  *table(["stage", "model", "answers", "tokens in", "tokens out", "cost"],
                         [[r["stage"], r["model"], r["answers"], r["tokens_in"], r["tokens_out"], usd(r["cost_usd"])]
                          for r in s["costs"]])]
    return lines


def students(s: dict) -> list[str]:
    c = int(round(s["confidence"] * 100))
    rows = [[r["student"], r["arm"], r["method"], "" if r["seed"] is None else r["seed"], pct(r["accuracy"]),
             f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]", r["n"], r["train_examples"], f"{r['train_wall_s']:.1f}",
             r["train_tokens"], r["teacher_tokens"], usd(r["teacher_usd"]), f"{r['answer_tokens']:.0f}",
             f"{r['answer_s']:.2f}", usd(r["answer_usd"])]
            for r in sorted(s["students"], key=lambda r: (-r["accuracy"] if r["accuracy"] == r["accuracy"] else 1,
                                                          r["student"]))]
    rows += [[name, "", "", "", f"not trained: {why}", "", 0, 0, "", "", "", "", "", "", ""]
             for name, why in s["skipped"].items()]
    lines = ["", "## Students", "", "Greedy answers to the chain-of-thought prompt on the test split; failed, "
             "truncated, ungradable and unanswered answers count as wrong (their rates: see below).", "",
             *table(["student", "arm", "method", "seed", "accuracy", f"{c}% CI", "n", "train examples",
                     "train time (s)", "train tokens", "teacher tokens", "teacher cost", "tokens per answer",
                     "seconds per answer", "cost per answer"], rows)]
    if long := [f"{r['student']} {r['too_long']}" for r in s["students"] if r.get("too_long")]:
        lines += ["", "Training examples left out for being longer than train.max_length: " + ", ".join(long) + "."]
    if s["seeds"]:
        lines += ["", "### Across training seeds", "", *table(
            ["arm", "method", "seeds", "mean accuracy", "sd"],
            [[r["arm"], r["method"], r["seeds"], pct(r["mean"]), pct(r["sd"])] for r in s["seeds"]])]
    return lines


def hypotheses(s: dict) -> list[str]:
    c = int(round(s["confidence"] * 100))
    lines = ["", "## Hypotheses", "", f"Each claim as the research plan states it, tested on the same test problems "
             f"(treatment - control). Paired bootstrap {c}% interval of the accuracy difference; exact McNemar test "
             f"on the discordant pairs, Holm-adjusted over the table; the smallest difference these problems detect "
             f"with power {s['power']:.0%} at level {s['alpha']}, and the problems the observed difference would "
             f"need. Both sides of a row are asked with the same test-time context (the treatment's prompt variant: "
             f"with the lecture, or none). {VERDICT_HELP}", ""]
    rows = [[h["hypothesis"], h["method"], "" if h["seed"] is None else h["seed"], h["treatment"], h["control"],
             "the lecture" if h.get("context") == "lecture" else "none", h["direction"], pct(h["difference"]),
             f"[{pct(h['ci_low'])}, {pct(h['ci_high'])}]",
             f"{h['only_treatment']}/{h['only_control']}", f"{h['p_value']:.3g}", f"{h['p_holm']:.3g}",
             pct(h["detectable"]) if h["detectable"] is not None else "> 100%",
             h["needed"] if h["needed"] is not None else "-", f"**{h['verdict']}**"] for h in s["hypotheses"]]
    lines += table(["hypothesis", "method", "seed", "treatment", "control", "test-time context", "predicted",
                    "difference", "interval",
                    "discordant (t/c)", "McNemar p", "Holm p", "detectable", "problems needed", "verdict"], rows)
    if not rows:
        lines.append("| (no pair of trained arms to compare) |" + " |" * 14)
    claims = {h["hypothesis"]: h["claim"] for h in s["hypotheses"]}
    lines += ["", "Claims:", "", *(f"- **{k}**: {v}" for k, v in claims.items())]
    return lines


def h36(s: dict) -> list[str]:
    refs = [r for r in s["students"] if r["arm"] == "reference"]
    if not refs and not s["leaderboard"]:
        return []
    rows = [h for h in s["hypotheses"] if h["hypothesis"] == "H3.6"]
    best = rows[0]["treatment"].split(" ")[0] if rows else None
    shown = [r for r in s["students"] if r["student"] == best] + refs
    lines = ["", "## H3.6: the best arm against zero-shot reference models", "",
             "Costs side by side: the teacher data behind the arm, training the student, and answering one "
             "test problem.", "", *table(
                 ["model", "accuracy", "teacher data (tokens)", "teacher data ($)", "training (s)",
                  "training tokens", "device", "tokens per answer", "seconds per answer", "$ per answer"],
                 [[r["student"], pct(r["accuracy"]), r["teacher_tokens"], usd(r["teacher_usd"]),
                   f"{r['train_wall_s']:.1f}", r["train_tokens"], r["device"], f"{r['answer_tokens']:.0f}",
                   f"{r['answer_s']:.2f}", usd(r["answer_usd"])] for r in shown])]
    if s["leaderboard"]:
        lines += ["", "Published figures (shown for comparison, never used in a verdict):", "",
                  *table(["model", "accuracy", "source"],
                         [[e["name"], pct(e["accuracy"]), e["source"]] for e in s["leaderboard"]])]
    return lines


def views(s: dict, plots: dict[str, str]) -> list[str]:
    lines = []
    for key, title, note in (
            ("cot_vs_direct", "Chain of thought vs direct answering", "Greedy accuracy with each evaluation prompt."),
            ("methods", "Training methods per arm", "Greedy accuracy of each arm trained with each method (lora and "
             "prompt_tuning: SFT; grpo: reinforcement learning from the base or train.init; lora+grpo: SFT, then "
             "GRPO). pass@k per student is in the pass@k table."),
            ("pass_at_k", "pass@k", "Unbiased pass@j from the sampled answers, beside greedy accuracy."),
            ("answer_outcomes", "Answers counted wrong: failed, truncated, ungradable, unanswered",
             "Share of each student's reported answers (greedy, test) counted wrong before their content is judged, "
             "each in the first that applies: the request failed; cut by the token limit; the grader timed out or "
             "failed; no answer committed to."),
            ("answer_vs_reasoning", "Answer vs reasoning accuracy",
             "Greedy chain-of-thought answers with a gold solution; the 2x2 counts of answer and reasoning.")):
        if s[key]:
            cols = list(s[key][0])
            if OVERLAP in cols:  # no judge: ROUGE-L overlap, never called reasoning accuracy
                title, note = f"Answer accuracy vs {OVERLAP}", (
                    "Greedy chain-of-thought answers with a gold solution; the 2x2 counts answer right/wrong against "
                    "overlap at or above evaluate.rouge_threshold (\"reasoning right\") or below it. Set "
                    "evaluate.judge for reasoning accuracy.")
            lines += ["", f"## {title}", "", note, "", *table(cols, [[fmt(r[c]) for c in cols] for r in s[key]])]
    for name, rows in s["breakdowns"].items():
        cols = list(rows[0])
        lines += ["", f"## Accuracy by {name.replace('_', ' ')}", "",
                  *table(cols, [[fmt(r[c]) for c in cols] for r in rows])]
    if plots:
        lines += ["", "## Plots", "", *(f"![{k}]({v})" for k, v in plots.items())]
    return lines


def render(summary: dict, plots: dict[str, str]) -> str:
    lines = [f"# distillery report: run `{summary['run']}`", "", *pipeline(summary), *students(summary),
             *hypotheses(summary), *h36(summary), *views(summary, plots)]
    return "\n".join(lines) + "\n"

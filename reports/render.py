"""report.md from the report's summary (reports/report.py `analyse`)."""

import math

from reports.deploy import render_deployment
from reports.training_sets import render_training_sets
from reports.views import OVERLAP


def pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def usd(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"${x:.6f}" if 0 < abs(x) < 0.01 else f"${x:.4f}"  # per-answer costs are often fractions of a cent


def seconds(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def verdict_help(s: dict) -> str:
    splits = s["splits"]
    chosen = (f"anything chosen (H3.6's best student) is chosen on `{splits['select']}`" if splits["select"] else
              "there is no val split, so H3.6's best student was chosen on the same answers: H3.6 is exploratory")
    return (f"The verdict is the exact McNemar test on the `{splits['report']}` split's paired answers (all "
            f"training seeds pooled as strata), Holm-adjusted over the {s['family']} tests of this table"
            f"{' (none could be made)' if not s['family'] else ''}: "
            f"supported or contradicted (by the sign of the difference against the prediction) when the adjusted "
            f"p <= {s['alpha']}, else inconclusive; {chosen}. H1 is decided on `val`, as the plan states it, in "
            f"the same Holm family; H2 has one row per soft-prompted student (its zero-shot side has no seeds).")


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)]


def pipeline(s: dict) -> list[str]:
    lines = ["## Pipeline", "", *(f"- {k}: {v}" for k, v in s["counts"].items())]
    if s["costs"]:
        lines += ["", "## Costs", "", "What the data of this run cost to produce (cached answers were paid once).", "",
                  *table(["stage", "model", "answers", "tokens in", "tokens out", "cost"],
                         [[r["stage"], r["model"], r["answers"], r["tokens_in"], r["tokens_out"], usd(r["cost_usd"])]
                          for r in s["costs"]])]
    return lines


def interval(lo: float | None, hi: float | None) -> str:
    return "" if lo is None else f"[{pct(lo)}, {pct(hi)}]"


def num(x) -> str:
    return "n/a" if x is None else str(x)


def students(s: dict) -> list[str]:
    c = int(round(s["confidence"] * 100))
    val = s["splits"]["select"]
    rows = [[r["student"], r["arm"], r["method"], "" if r["seed"] is None else r["seed"], pct(r["accuracy"]),
             interval(r["ci_low"], r["ci_high"]), r["n"], *([pct(r["val_accuracy"])] if val else []),
             num(r["train_examples"]), seconds(r["train_wall_s"]), num(r["train_tokens"]), num(r["teacher_tokens"]),
             usd(r["teacher_usd"]), f"{r['answer_tokens']:.0f}", seconds(r["answer_s"]), usd(r["answer_usd"])]
            for r in sorted(s["students"], key=lambda r: (-r["accuracy"] if r["accuracy"] == r["accuracy"] else 1,
                                                          r["student"]))]
    rows += [[name, "", "", "", f"not trained: {why}", "", 0, *([""] if val else []), 0, *[""] * 7]
             for name, why in s["skipped"].items()]
    lines = ["", "## Students", "", f"Greedy answers to the chain-of-thought prompt on the `{s['splits']['report']}` "
             f"split, Wilson {c}% intervals" + (f"; `{val}` accuracy beside (where choices are made)" if val else "")
             + ". Failed, truncated, ungradable and unanswered answers count as wrong (their rates: \"Answers counted "
             "wrong\" below). Seconds per answer: a reference's per request; a local student's batch time shared out "
             "(device-seconds). n/a: unknown or not applicable (never 0).", "",
             *table(["student", "arm", "method", "seed", "accuracy", f"{c}% CI", "n", *([f"{val} accuracy"] if val
                     else []), "train examples", "train time (s)", "train tokens", "teacher tokens", "teacher cost",
                     "tokens per answer", "seconds per answer", "cost per answer"], rows)]
    if long := [f"{r['student']} {r['too_long']}" for r in s["students"] if r.get("too_long")]:
        lines += ["", "Training examples left out for being longer than train.max_length: " + ", ".join(long) + "."]
    if s["seeds"]:
        lines += ["", "### Across training seeds", "", *table(
            ["arm", "method", "seeds", "mean accuracy", "sd"],
            [[r["arm"], r["method"], r["seeds"], pct(r["mean"]), pct(r["sd"])] for r in s["seeds"]])]
    return lines


def signed(x: float | None) -> str:
    return "" if x is None else ("+" if x > 0 else "") + pct(x)


def per_seed(h: dict) -> str:
    """Per-seed differences and their spread, beside the pooled one."""
    if len(h["per_seed"]) < 2:
        return ""
    spread = f" (sd {pct(h['seed_sd'])})" if h["seed_sd"] is not None else ""
    return ", ".join(f"s{p['seed']} {signed(p['difference'])}" for p in h["per_seed"]) + spread


def verdict_cell(h: dict) -> str:
    return f"**{h['verdict']}**" if h["tested"] else h["verdict"]


def context(h: dict) -> str:
    return {"lecture": "the lecture", "tools": "the tools (treatment); plain (control)"}.get(h.get("context"), "none")


def hypothesis_row(h: dict) -> list:
    if h["difference"] is None:
        return [h["hypothesis"], verdict_cell(h), h["method"], h["treatment"], h["control"], context(h),
                h["direction"], *[""] * 9]
    needed = h["needed"] if h["needed"] is not None else "- (not the predicted direction)" \
        if (h["difference"] > 0) != (h["direction"] == "higher") or h["difference"] == 0 else "> 10^6"
    return [h["hypothesis"], verdict_cell(h), h["method"], h["treatment"], h["control"], context(h), h["direction"],
            signed(h["difference"]), interval(h["ci_low"], h["ci_high"]), h["n"], per_seed(h),
            f"{h['only_treatment']}/{h['only_control']}", f"{h['p_value']:.3g}",
            "" if h["p_holm"] is None else f"{h['p_holm']:.3g}",
            (pct(h["detectable"]) if h["detectable"] is not None else "> 100%")
            + f" (discordance {pct(h['discordance'])}, {h['discordance_from']})", needed]


def hypotheses(s: dict) -> list[str]:
    c = int(round(s["confidence"] * 100))
    lines = ["", "## Hypotheses", "", f"Each claim as the research plan states it (treatment - control, on the "
             f"same problems). {verdict_help(s)} The {c}% interval of the difference agrees with the unadjusted test: "
             f"Clopper-Pearson for the share of discordant pairs the treatment wins times the Wilson interval of the "
             f"discordant share, so it excludes 0 exactly when the McNemar p <= {1 - s['confidence']:.2g}. "
             f"Detectable: the smallest difference these pairs detect with power {s['power']:.0%} at level "
             f"{s['alpha']} under the stated discordance; problems needed: for the observed difference, only when "
             "it points the predicted way. Both sides of a row are asked with the same test-time context: the "
             "treatment's prompt variant (with the lecture, or none); H1 compares a student answering with the tools "
             "offered (neither caption nor lecture in its prompt) with a reference asked plain (caption in its "
             "prompt), on `val` as the plan states it.", ""]
    rows = [hypothesis_row(h) for h in s["hypotheses"]]
    lines += table(["hypothesis", "verdict", "method", "treatment", "control", "test-time context", "predicted",
                    "difference",
                    f"{c}% interval", "n (pairs)", "seeds", "discordant (t/c)", "McNemar p", "Holm p", "detectable",
                    "problems needed"], rows)
    claims = {h["hypothesis"]: h["claim"] for h in s["hypotheses"]}
    lines += ["", "Claims:", "", *(f"- **{k}**: {v}" for k, v in claims.items())]
    return lines


def answer(s: dict) -> list[str]:
    """One line per hypothesis: the claim in a few words, then each method's verdict, difference, interval and n."""
    lines, order = ["## Answer", ""], list(dict.fromkeys(h["hypothesis"] for h in s["hypotheses"]))
    for hid in order:
        rows = [h for h in s["hypotheses"] if h["hypothesis"] == hid]
        if len(rows) > 1 and len({h["verdict"] for h in rows}) == 1 and rows[0]["difference"] is None:
            lines.append(f"- **{hid}** ({rows[0]['short']}): every method {rows[0]['verdict']}")
            continue
        parts = [(f"{h['treatment']} vs {h['control']} " if hid in ("H1", "H2") and h["difference"] is not None else
                  (f"{h['method']} " if h["method"] else "") + (f"vs {h['control']} " if hid == "H3.6" else ""))
                 + (f"{verdict_cell(h)} {signed(h['difference'])} {interval(h['ci_low'], h['ci_high'])}, "
                    f"n {h['n']}" if h["difference"] is not None else h["verdict"]) for h in rows]
        lines.append(f"- **{hid}** ({rows[0]['short']}): " + "; ".join(parts))
    return lines + ["", verdict_help(s)]


def h36(s: dict) -> list[str]:
    refs = [r for r in s["students"] if r["arm"] == "reference"]
    if not refs and not s["leaderboard"]:
        return []
    rows = [h for h in s["hypotheses"] if h["hypothesis"] == "H3.6" and h["difference"] is not None]
    best = rows[0]["treatment"].split(" ")[0] if rows else None
    shown = [r for r in s["students"] if r["student"] == best] + refs
    lines = ["", "## H3.6: the best arm against zero-shot reference models", "",
             "Efficiency as the plan states it: accuracy per cost, each cost with its unit. Teacher data and training "
             "count for the trained student only (a reference is not tuned on this data); local training and "
             "answering are in device-seconds, and in dollars only with report.device_hour_usd; API answers at their "
             "prices. Seconds per answer: a reference's per request, a local student's batch time shared out (the two "
             "are stated, not equated). n/a: unknown or not applicable, never 0. Correct answers per 1,000 generated "
             "tokens compares inference efficiency. The H3.6 verdict in the hypotheses table tests accuracy (the best "
             "student against each reference on the same problems, the references asked with the best arm's test-time "
             f"context: {context(rows[0]) if rows else 'none'}); this table shows each model under its own prompt "
             "variant, and efficiency beside it without a verdict.", "", *table(
                 ["model", "accuracy", "n", "teacher data (tokens)", "teacher data ($)", "training (device-s)",
                  "training ($)", "device", "tokens per answer", "correct per 1k answer tokens", "seconds per answer",
                  "$ in all (teacher + training + n answers)", "accuracy points per $", "$ per answer"],
                 [[r["student"], pct(r["accuracy"]), r["n"], num(r["teacher_tokens"]), usd(r["teacher_usd"]),
                   seconds(r["train_wall_s"]), usd(r["train_usd"]), r["device"] or "n/a", f"{r['answer_tokens']:.0f}",
                   per_k(r), f"{seconds(r['answer_s'])} ({r['latency_kind']})", usd(r["total_usd"]),
                   "n/a" if r["points_per_usd"] is None else f"{r['points_per_usd']:.3g}", usd(r["answer_usd"])]
                  for r in shown])]
    if s["leaderboard"]:
        lines += ["", "Published figures (shown for comparison, never used in a verdict):", "",
                  *table(["model", "accuracy", "source"],
                         [[e["name"], pct(e["accuracy"]), e["source"]] for e in s["leaderboard"]])]
    return lines


def per_k(r: dict) -> str:
    tokens = r["answer_tokens"]
    return "n/a" if not tokens or r["accuracy"] != r["accuracy"] else f"{1000 * r['accuracy'] / tokens:.2f}"


def fmt(x) -> str:
    """A view's cell: accuracy [interval] n=N for a cell dict, a percentage for a float."""
    if isinstance(x, dict):
        if x["accuracy"] is None:
            return "n/a (n=0)"
        return f"{pct(x['accuracy'])} {interval(x['ci_low'], x['ci_high'])} n={x['n']}"
    if isinstance(x, float):
        return pct(x)
    return "n/a" if x is None else str(x)


def view(rows: list[dict], rename: dict[str, str] | None = None) -> list[str]:
    """A view as a table; the difference's interval columns shown as one."""
    cols = [c for c in rows[0] if c != "ci_high"]
    header = [(rename or {}).get(c, "interval" if c == "ci_low" else c) for c in cols]
    body = [[interval(r["ci_low"], r["ci_high"]) if c == "ci_low" else fmt(r[c]) for c in cols] for r in rows]
    return table(header, body)


VIEWS = (
    ("cot_vs_direct", "Chain of thought vs direct answering", "Greedy accuracy with each evaluation prompt (Wilson "
     "interval, n), and the paired difference on the problems both prompts answered with its interval."),
    ("methods", "Training methods per arm", "Greedy accuracy (interval, n) of each arm trained with each method (lora "
     "and prompt_tuning: SFT; grpo: reinforcement learning from the base or train.init; lora+grpo: SFT, then GRPO). "
     "pass@k per student is in the pass@k table."),
    ("pass_at_k", "pass@k", "Unbiased pass@j from the sampled answers (normal interval over problems, n problems), "
     "beside greedy accuracy."),
    ("answer_outcomes", "Answers counted wrong: failed, truncated, ungradable, unanswered",
     "Share of each student's reported answers (greedy) counted wrong before their content is judged, each in the "
     "first that applies: the request failed; cut by the token limit; the grader timed out or failed; no answer "
     "committed to."),
    ("tool_use", "Tool use (evaluate.tools)", "Greedy answers given with the tools offered (neither caption nor "
     "lecture in the prompt), per student and split: tool-call rate (answers that called at least one tool; Wilson "
     "interval, n), the share of answers calling each tool, accuracy over all, with and without tool use, and each "
     "zero-shot reference's accuracy on the same split (asked plain, the caption in its prompt). H1 tests the val "
     "pairs."),
    ("answer_vs_reasoning", "Answer vs reasoning accuracy",
     "Greedy chain-of-thought answers with a gold solution: answer and reasoning accuracy (interval, n) and the 2x2 "
     "counts of answer and reasoning."))


def views(s: dict, plots: dict[str, str]) -> list[str]:
    lines = []
    for key, title, note in VIEWS:
        if s[key]:
            if OVERLAP in s[key][0]:  # no judge: ROUGE-L overlap, never called reasoning accuracy
                title, note = f"Answer accuracy vs {OVERLAP}", (
                    "Greedy chain-of-thought answers with a gold solution (interval, n); the 2x2 counts answer "
                    "right/wrong against overlap at or above evaluate.rouge_threshold (\"reasoning right\") or below "
                    "it. Set evaluate.judge for reasoning accuracy.")
            lines += ["", f"## {title}", "", note, "", *view(s[key])]
    trained = set(s["trained_sources"])
    for name, rows in s["breakdowns"].items():
        marks = {c: f"{c} (trained on)" for c in rows[0] if name == "source" and c in trained}
        note = (["Sources marked \"trained on\" have training problems in the arms; the others are out of "
                 "distribution.", ""] if marks else [])
        lines += ["", f"## Accuracy by {name.replace('_', ' ')}", "", "Wilson interval and n per cell.", "", *note,
                  *view(rows, marks)]
    if plots:
        lines += ["", "## Plots", "", *(f"![{k}]({v})" for k, v in plots.items())]
    return lines


def render(summary: dict, plots: dict[str, str]) -> str:
    lines = [f"# distillery report: run `{summary['run']}`", "", *answer(summary), "", *pipeline(summary),
             *render_training_sets(summary, table), *students(summary),
             *hypotheses(summary), *h36(summary), *render_deployment(summary), *views(summary, plots)]
    return "\n".join(lines) + "\n"

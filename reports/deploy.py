"""The report's Deployment section: per student and format its size, peak memory, speed and accuracy
(Wilson interval), the accuracy change against the student's merged checkpoint (exact McNemar on the
paired answers, with the interval that agrees with it), the accuracy-vs-memory Pareto front, and the
non-inferiority row "4-bit loses no more than `deploy.margin`".

Non-inferiority: the paired difference d = acc(4-bit) - acc(merged) with its interval at
`report.confidence` (`reports.stats.paired_interval`, the exact test inverted); supported when the
interval's lower end is above -margin, contradicted when its upper end is below -margin, else
inconclusive. 4-bit is q4_k_m where it was measured, else int4.
"""

import polars as pl

from reports.stats import mcnemar_p, paired_interval, wilson

REFERENCE_FORMAT = "safetensors"  # every change is against the merged, unquantized student
FOUR_BIT = ("q4_k_m", "int4")  # the non-inferiority row's format, first measured wins


def paired(evals: pl.DataFrame, student: str, fmt: str) -> tuple[int, int, int]:
    """(pairs, b, c): problems both formats answered with a judgeable gold; b = only `fmt` right."""
    a = evals.filter(pl.col("student") == f"{student}@{fmt}").select("problem_id", "correct")
    ref = evals.filter(pl.col("student") == f"{student}@{REFERENCE_FORMAT}").select("problem_id", "correct")
    both = a.join(ref, on="problem_id", suffix="_ref").drop_nulls(["correct", "correct_ref"])
    t, c = both["correct"], both["correct_ref"]
    return both.height, int((t & ~c).sum()), int((~t & c).sum())


def change(evals: pl.DataFrame, student: str, fmt: str, confidence: float) -> dict:
    n, b, c = paired(evals, student, fmt)
    if fmt == REFERENCE_FORMAT or n == 0:
        return dict(change=None, change_low=None, change_high=None, change_p=None)
    lo, hi = paired_interval(b, c, n, confidence)
    return dict(change=(b - c) / n, change_low=lo, change_high=hi, change_p=mcnemar_p(b, c))


def deployment_rows(measurements: list[dict], evals: pl.DataFrame, confidence: float) -> list[dict]:
    """One row per measured (student, format), with interval, change and whether it is on the front."""
    rows = []
    for m in measurements:
        row = dict(m)
        if m["status"] == "measured" and m["n"]:
            k = round(m["accuracy"] * m["n"])
            row["ci_low"], row["ci_high"] = wilson(k, m["n"], confidence)
            row |= change(evals, m["student"], m["format"], confidence)
        rows.append(row)
    front = pareto([r for r in rows if r["status"] == "measured" and r["accuracy"] is not None])
    return [r | {"pareto": (r["student"], r["format"]) in front} for r in rows]


def pareto(rows: list[dict]) -> set[tuple[str, str]]:
    """(student, format) of the rows no other row beats: at most its memory and at least its accuracy,
    better in one."""
    def beaten(r: dict) -> bool:
        return any(o["peak_rss_mb"] <= r["peak_rss_mb"] and o["accuracy"] >= r["accuracy"]
                   and (o["peak_rss_mb"] < r["peak_rss_mb"] or o["accuracy"] > r["accuracy"]) for o in rows)
    return {(r["student"], r["format"]) for r in rows if not beaten(r)}


def non_inferiority(evals: pl.DataFrame, rows: list[dict], margin: float, confidence: float) -> list[dict]:
    """Per student, the row "4-bit loses no more than margin" (or why it is not tested)."""
    out = []
    for student in dict.fromkeys(r["student"] for r in rows):
        measured = {r["format"] for r in rows if r["student"] == student and r["status"] == "measured"}
        fmt = next((f for f in FOUR_BIT if f in measured), None)
        claim = f"{fmt or 'q4'} loses no more than {margin * 100:.1f} points against {REFERENCE_FORMAT}"
        row = dict(student=student, format=fmt, claim=claim, margin=margin, n=None, difference=None, ci_low=None,
                   ci_high=None)
        n = paired(evals, student, fmt)[0] if fmt and REFERENCE_FORMAT in measured else 0
        if n == 0:
            out.append(row | dict(verdict=f"not tested: no measured 4-bit and {REFERENCE_FORMAT} answers"))
            continue
        _, b, c = paired(evals, student, fmt)
        lo, hi = paired_interval(b, c, n, confidence)
        verdict = "supported" if lo > -margin else "contradicted" if hi < -margin else "inconclusive"
        out.append(row | dict(n=n, difference=(b - c) / n, ci_low=lo, ci_high=hi, verdict=verdict))
    return out


def deployment_summary(measurements: list[dict], evals: pl.DataFrame, margin: float, confidence: float) -> dict:
    rows = deployment_rows(measurements, evals, confidence)
    return dict(rows=rows, non_inferiority=non_inferiority(evals, rows, margin, confidence))


def mb(x) -> str:
    return "n/a" if x is None else f"{x / 2**20:.1f}"


def fig(x, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def render_deployment(s: dict) -> list[str]:
    deployment = s.get("deployment")
    if not deployment or not deployment["rows"]:
        return []
    lines = ["", "## Deployment", "",
             "Each format measured on this machine's CPU in its own process (peak resident memory of that process, "
             "interpreter included). Change: accuracy minus the merged student's on the same problems, exact "
             "McNemar p. * on the accuracy-vs-memory Pareto front.", "",
             "| student | format | size (MiB) | peak memory (MiB) | prompt tok/s | generation tok/s | first token (s) "
             "| accuracy (interval) | change (interval, p) |", "|" + "---|" * 9]
    for r in deployment["rows"]:
        if r["status"] != "measured":
            lines.append(f"| {r['student']} | {r['format']} | {mb(r['size_bytes'])} | {r['reason']} | | | | | |")
            continue
        acc = "no gradable answer" if r.get("accuracy") is None else \
            f"{r['accuracy'] * 100:.1f}% ({r['ci_low'] * 100:.1f}-{r['ci_high'] * 100:.1f}, n={r['n']})"
        diff = "reference" if r.get("change") is None else (
            f"{r['change'] * 100:+.1f} ({r['change_low'] * 100:+.1f} to {r['change_high'] * 100:+.1f}, "
            f"p={r['change_p']:.3g})")
        lines.append(f"| {r['student']} | {r['format']}{' *' if r['pareto'] else ''} | {mb(r['size_bytes'])} | "
                     f"{fig(r['peak_rss_mb'], 0)} | {fig(r['prompt_tps'])} | {fig(r['generation_tps'])} | "
                     f"{fig(r['ttft_s'], 3)} | {acc} | {diff} |")
    lines += ["", "| student | hypothesis | n | difference (interval) | verdict |", "|---|---|---|---|---|"]
    for h in deployment["non_inferiority"]:
        diff = "" if h["difference"] is None else (f"{h['difference'] * 100:+.1f} ({h['ci_low'] * 100:+.1f} to "
                                                   f"{h['ci_high'] * 100:+.1f})")
        lines.append(f"| {h['student']} | {h['claim']} | {h['n'] or ''} | {diff} | {h['verdict']} |")
    return lines


def plot_deployment(summary: dict, path, pyplot) -> bool:
    """Accuracy against peak memory, one point per measured format, the Pareto front joined."""
    rows = [r for r in (summary.get("deployment") or {}).get("rows", [])
            if r["status"] == "measured" and r.get("accuracy") is not None]
    if not rows:
        return False
    plt = pyplot()
    fig_, ax = plt.subplots(figsize=(7, 4.5))
    for student in dict.fromkeys(r["student"] for r in rows):
        mine = [r for r in rows if r["student"] == student]
        ax.scatter([r["peak_rss_mb"] for r in mine], [r["accuracy"] * 100 for r in mine], label=student)
        for r in mine:
            ax.annotate(r["format"], (r["peak_rss_mb"], r["accuracy"] * 100), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["peak_rss_mb"])
    ax.plot([r["peak_rss_mb"] for r in front], [r["accuracy"] * 100 for r in front], "k--", lw=1, label="Pareto front")
    ax.set_xlabel("peak resident memory while answering (MiB)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Deployment: accuracy against memory")
    ax.legend(fontsize=7)
    fig_.tight_layout()
    fig_.savefig(path, dpi=110)
    plt.close(fig_)
    return True

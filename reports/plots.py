"""The report's plots, as PNG files beside report.md: the hypothesis forest plot, accuracy with
intervals per student, cost against accuracy, pass@k curves and the answer/reasoning 2x2."""

from pathlib import Path

from reports.deploy import plot_deployment

COLORS = {"supported": "#2a9d8f", "contradicted": "#e76f51", "inconclusive": "#8d99ae", "exploratory": "#b08968"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def error_bar(x: float, lo: float, hi: float) -> list[list[float]]:
    """matplotlib's (2, 1) xerr in points; floating-point noise can put a Wilson bound a hair past its estimate."""
    return [[max(0.0, x - lo) * 100], [max(0.0, hi - x) * 100]]


def forest(summary: dict, path: Path) -> bool:
    rows = [h for h in summary["hypotheses"] if h["difference"] is not None]  # "not tested" rows have no numbers
    if not rows:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    for i, h in enumerate(reversed(rows)):
        verdict = h["verdict"].split(":")[0]  # "not tested: too few problems" keeps its numbers
        color = COLORS.get(verdict, "#adb5bd")
        ax.errorbar(h["difference"] * 100, i, xerr=error_bar(h["difference"], h["ci_low"], h["ci_high"]),
                    fmt="o", color=color, capsize=3)
        arrow = "<" if h["direction"] == "lower" else ">"
        ax.text(1.01, i, f"{verdict} (predicted {arrow}0)", transform=ax.get_yaxis_transform(), va="center",
                fontsize=8, color=color)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{h['hypothesis']} {h['method']} vs {h['control']}" if h["hypothesis"] == "H3.6"
                        else f"{h['hypothesis']} {h['treatment']} vs {h['control']}" if h["hypothesis"] in ("H1", "H2")
                        else f"{h['hypothesis']} {h['method']}" for h in reversed(rows)], fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("accuracy difference, treatment - control (points)")
    ax.set_title("Hypotheses: difference and interval")
    return _save(fig, path)


def accuracy(summary: dict, path: Path) -> bool:
    rows = sorted((r for r in summary["students"] if r["accuracy"] == r["accuracy"]), key=lambda r: r["accuracy"])
    if not rows:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    for i, r in enumerate(rows):
        color = "#264653" if r["arm"] not in ("base", "reference") else "#e9c46a"
        ax.errorbar(r["accuracy"] * 100, i, xerr=error_bar(r["accuracy"], r["ci_low"], r["ci_high"]), fmt="o",
                    color=color, capsize=3)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["student"] for r in rows], fontsize=8)
    ax.set_xlabel("accuracy (%) with interval")
    ax.set_xlim(0, 100)
    ax.set_title("Accuracy per student")
    return _save(fig, path)


def cost(summary: dict, path: Path) -> bool:
    """Accuracy against the costs that are known: teacher + training tokens of the trained students,
    and tokens per answer for everyone (a model whose cost is unknown is left out, not put at 0)."""
    rows = [r for r in summary["students"] if r["accuracy"] == r["accuracy"]]
    if not rows:
        return False
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for r in rows:
        if r["teacher_tokens"] is not None and r["train_tokens"] is not None:
            x = r["teacher_tokens"] + r["train_tokens"]
            left.scatter(x, r["accuracy"] * 100, color="#264653")
            left.annotate(r["student"], (x, r["accuracy"] * 100), fontsize=7)
        right.scatter(r["answer_tokens"], r["accuracy"] * 100, color="#e76f51" if r["arm"] == "reference" else "#264653")
        right.annotate(r["student"], (r["answer_tokens"], r["accuracy"] * 100), fontsize=7)
    left.set_xlabel("teacher + training tokens (trained students)")
    right.set_xlabel("tokens per answer (inference)")
    for ax in (left, right):
        ax.set_ylabel("accuracy (%)")
    fig.suptitle("Cost against accuracy")
    return _save(fig, path)


def pass_curves(summary: dict, path: Path) -> bool:
    rows = summary["pass_at_k"]
    if not rows:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ks = sorted(int(c.split("@")[1]) for c in r if c.startswith("pass@"))
        ax.plot(ks, [r[f"pass@{k}"]["accuracy"] * 100 for k in ks], marker="o", label=r["student"])
    ax.set_xticks(ks)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    ax.legend(fontsize=7)
    ax.set_title("pass@k from sampled answers")
    return _save(fig, path)


def two_by_two(summary: dict, path: Path) -> bool:
    rows = summary["answer_vs_reasoning"]
    if not rows:
        return False
    plt = _pyplot()
    parts = [("both_right", "#2a9d8f"), ("answer_right_reasoning_wrong", "#e9c46a"),
             ("answer_wrong_reasoning_right", "#f4a261"), ("both_wrong", "#e76f51")]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    left = [0.0] * len(rows)
    for key, color in parts:
        share = [100 * r[key] / r["n"] for r in rows]
        ax.barh([r["student"] for r in rows], share, left=left, color=color, label=key.replace("_", " "))
        left = [a + b for a, b in zip(left, share, strict=True)]
    ax.set_xlabel("share of answers (%)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Answer vs reasoning")
    return _save(fig, path)


def _save(fig, path: Path) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return True


def deployment(summary: dict, path: Path) -> bool:
    return plot_deployment(summary, path, _pyplot)


PLOTS = {"hypotheses": forest, "accuracy": accuracy, "cost": cost, "pass_at_k": pass_curves,
         "answer_vs_reasoning": two_by_two, "deployment": deployment}


def write_plots(out_dir: Path, summary: dict) -> dict[str, str]:
    """name -> PNG file name (relative to out_dir) of each plot the summary has data for."""
    made = {}
    for name, plot in PLOTS.items():
        path = Path(out_dir) / f"{name}.png"
        path.unlink(missing_ok=True)
        if plot(summary, path):
            made[name] = path.name
    return made

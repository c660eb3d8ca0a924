"""The report's "Training sets" section: what each arm holds, on which problems, at what size, and
for each hypothesis how many training problems its two arms share."""

from schemas.experiment import HYPOTHESES


def training_set_rows(arm_stats: list[dict], metas: dict[str, dict]) -> list[dict]:
    """Per arm: problems, examples, training tokens (of its first trained SFT student), conflicts,
    wrong-attempt share; not built arms with their reason."""
    tokens = {}
    for m in metas.values():
        if m.get("status") != "skipped" and m.get("method") in ("lora", "prompt_tuning"):
            tokens.setdefault(m["arm"], m.get("train_tokens"))
    return [r | {"train_tokens": tokens.get(r["arm"])} for r in arm_stats]


def shared_problems(arm_stats: list[dict]) -> list[dict]:
    """Per declared hypothesis between two arms: the training problems of each side (equal under matched
    coverage; "not built" for an arm without examples)."""
    by_arm = {r["arm"]: r for r in arm_stats}
    size = lambda arm: by_arm[arm]["problems"] if by_arm[arm]["built"] else "not built"  # noqa: E731
    return [dict(hypothesis=h.id, treatment=h.treatment, control=h.control,
                 treatment_problems=size(h.treatment), control_problems=size(h.control))
            for h in HYPOTHESES if h.treatment in by_arm and h.control in by_arm]


def row(r: dict) -> list:
    if not r["built"]:
        return [r["arm"], 0, 0, "", "", "", "", "", f"not built: {r['reason']}"]
    return [r["arm"], r["problems"], r["examples"], "n/a" if r["train_tokens"] is None else r["train_tokens"],
            r["unmatched_problems"], share(r["answer_only"], r["examples"]), share(r["conflicts"], r["examples"]),
            share(r["wrong_attempts"], r["examples"]), ""]


def share(part: int | None, whole: int) -> str:
    return "" if part is None else f"{part} of {whole}" + (f" ({part / whole:.0%})" if whole else "")


def render_training_sets(s: dict, table) -> list[str]:
    rows = s.get("training_sets") or []
    if not rows:
        return []
    coverage = rows[0]["coverage"]
    note = ("every arm on the training problems all built arms cover (`arms.coverage: matched`), so each "
            "contrast compares students trained on the same problems" if coverage == "matched" else
            "each arm on every problem it can use (`arms.coverage: all`): a contrast also compares which problems "
            "were trained on")
    lines = ["", "## Training sets", "", f"What each arm holds: {note}. Conflicts: examples whose teacher answer "
             "disagrees with the dataset's (unverified teacher solutions). Wrong attempts: examples that quote a "
             "teacher mistake and correct it. Answer line only: examples with no solution text beside the answer "
             "statement (a terse teacher's shortest correct traces are often that).", "",
             *table(["arm", "problems", "examples", "training tokens", "left out to match", "answer line only",
                     "conflicts", "wrong attempts", "built"], [row(r) for r in rows])]
    if shared := shared_problems(rows):
        lines += ["", "Training problems behind each hypothesis (treatment / control):", "",
                  *(f"- {h['hypothesis']}: {h['treatment']} {h['treatment_problems']} / {h['control']} "
                    f"{h['control_problems']}" for h in shared)]
    return lines

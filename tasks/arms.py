"""arms: the student training sets the hypotheses compare, in trl's conversational
prompt/completion form (one row per training example). The arms themselves are declared in
`schemas/experiment.py`; this module builds any declared arm from its parts:

    solution          the dataset's own solution
    teacher_solution  the teacher's answer and solution as written for a reader: its visible answer
                      text (a reasoning model's text after its reasoning; a chat model's whole reply)
    cot               the teacher's separate chain of thought in `<think>` tags, then its solution
                      (None when the teacher gave no reasoning apart from its answer)
    wrong_attempt     the teacher's shortest wrong attempt, quoted and marked wrong

Every completion ends with the gold answer sentence the students are graded on (`teacher_all`, the
unverified policy ablation: with the answer sentence of the teacher's own answer). Under
`arms.coverage: matched` every arm keeps only the training problems where every built arm has an
example, so the two sides of any contrast are trained on the same problems.
`run_arms` (the arms stage) builds the configured arms, skipped while no input, setting or code changed.
"""

import re
from pathlib import Path

import polars as pl

from schemas import experiment as experiment_mod
from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.experiment import ARM, WRONG_VARIANT
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, read_table, write_table
from tasks import decontam as decontam_mod
from tasks import fingerprints
from tasks import select as select_mod
from tasks.decontam import left_out, run_decontam
from tasks.prompts import LETTERS, answer_sentence, user_message
from tasks.select import answer_lines_only, by_length, finished

WRONG_EXCERPT = 600  # characters of a wrong attempt quoted in the `mistakes` arm
NO_COT = ("the teacher gave no separate chain of thought (no reasoning field, <think> block or thought summary in "
          "its verified traces); sample.think_prompt asks a plain chat teacher for one")


def variant_of(arm: str) -> str:
    """The prompt variant the student sees."""
    return ARM[arm].prompt_variant


def source_variant(arm: str) -> str | None:
    """The prompt variant of the teacher samples the arm's solutions come from (None: no teacher)."""
    return ARM[arm].teacher_variant


def cot(trace: dict) -> str | None:
    reasoning = (trace["reasoning"] or "").strip()
    return f"<think>\n{reasoning}\n</think>\n{trace['content'].strip()}" if reasoning else None


def commit(text: str, sentence: str) -> str:
    """`text` ending with `sentence`: a closing line that already says it (up to markdown, case and the
    final full stop; for an option, with its text after it: "The answer is (C) grapes") is replaced by
    it, as is a closing line's last sentence that says it ("... the right pan. The answer is (B)."), else it
    is appended: the sentence is said once."""
    lines = text.strip().splitlines()
    head, _, tail = lines[-1].rpartition(". ") if lines else ("", "", "")
    if lines and says(lines[-1], sentence):
        lines = lines[:-1]
    elif head and says(tail, sentence):
        lines[-1] = head + "."
    return "\n".join([*lines, sentence]).strip()


def says(line: str, sentence: str) -> bool:
    said, stem = (x.strip().strip("*_ ").rstrip(".").lower() for x in (line, sentence))
    return said == stem or (stem.endswith(")") and said.startswith(stem) and said[len(stem)] == " ")


def own_sentence(problem: dict, extracted: str | None) -> str | None:
    """The answer sentence for the answer a teacher sample committed to (None: it committed to none)."""
    if extracted is None:
        return None
    if problem.get("choices"):
        index = LETTERS.find(extracted)
        return answer_sentence({**problem, "answer_index": index}) if 0 <= index < len(problem["choices"]) else None
    return answer_sentence({**problem, "answer": extracted})


def wrong_attempt(wrong: dict) -> str:
    """The attempt quoted between typographic quotes, its own quote marks made plain apostrophes, so that
    graders and the stop rule can tell the quoted (wrong) answer from the one the completion commits to."""
    attempt = re.sub(r"[\"“”]", "'", wrong["content"].strip()[:WRONG_EXCERPT])
    said = f"({wrong['extracted']})" if wrong["extracted"] else "no clear answer"
    return (f"A tempting but wrong attempt: “{attempt}”\nThis attempt is wrong: it gives {said}, "
            f"which does not fit the facts above.")


# part name -> (problem, the teacher trace the example is built from or None, the shortest wrong attempt or None)
PARTS = {
    "solution": lambda p, trace, wrong: p["solution"] or None,
    "teacher_solution": lambda p, trace, wrong: (trace["content"] or "").strip() or None if trace else None,
    "cot": lambda p, trace, wrong: cot(trace) if trace else None,
    "wrong_attempt": lambda p, trace, wrong: wrong_attempt(wrong) if wrong else None,
}


def completion_for(arm: str, p: dict, trace: dict | None, wrong: dict | None) -> str | None:
    """The assistant turn of `arm` for problem `p` built from `trace`; None when a needed part is missing."""
    spec = ARM[arm]
    parts = {name: PARTS[name](p, trace, wrong) for name in spec.parts}
    sentence = answer_sentence(p) if spec.ends_with == "gold" else own_sentence(p, trace and trace.get("extracted"))
    if any(not parts[n] for n in spec.needs) or sentence is None:
        return None
    return commit("\n\n".join(t.strip() for t in parts.values() if t and t.strip()), sentence)


def finished_samples(samples: pl.DataFrame, verdicts: pl.DataFrame, teacher: str,
                     finished_only: bool = True) -> pl.DataFrame:
    """The teacher's samples with their verdicts: the finished ones (not truncated, answer committed
    to) unless `finished_only` is off (`select.finished_only`)."""
    own = samples.filter(pl.col("teacher") == teacher).join(
        verdicts.select("sample_id", "correct", "extracted", "found_by"), on="sample_id", how="inner")
    keep = [finished(r) or not finished_only for r in own.iter_rows(named=True)]
    return own.filter(pl.Series(keep, dtype=pl.Boolean))


def shortest_wrong(done: pl.DataFrame) -> dict[str, dict]:
    """problem_id -> its shortest incorrect sample of the wrong-attempt variant, from `finished_samples`."""
    wrong = done.filter(
        (pl.col("variant") == WRONG_VARIANT) & (pl.col("correct") == False))  # noqa: E712  (null: cannot judge)
    out: dict[str, dict] = {}
    for r in wrong.iter_rows(named=True):  # shortest as selection measures it (tokens, else characters)
        if r["problem_id"] not in out or by_length(r) < by_length(out[r["problem_id"]]):
            out[r["problem_id"]] = r
    return out


def traces_by_problem(selected: pl.DataFrame, done: pl.DataFrame, teacher: str) -> dict[str, dict]:
    """kind (correct | first | all) -> problem_id -> variant -> traces, in order."""
    chosen = selected.filter((pl.col("teacher") == teacher) & pl.col("sample_id").is_not_null())
    out: dict[str, dict] = {"correct": {}, "first": {}, "all": {}}
    for r in chosen.iter_rows(named=True):
        out["correct"].setdefault(r["problem_id"], {}).setdefault(r["variant"], []).append(r)
    for r in done.sort("problem_id", "variant", "sample_index").iter_rows(named=True):
        out["all"].setdefault(r["problem_id"], {}).setdefault(r["variant"], []).append(r)
        out["first"].setdefault(r["problem_id"], {}).setdefault(r["variant"], [r])
    return out


def build_arm(arm: str, problems: pl.DataFrame, captions: dict[str, str], traces: dict[str, dict],
              wrong: dict[str, dict]) -> pl.DataFrame:
    """Every training example of `arm`, over all training problems (see `match` for coverage)."""
    spec = ARM[arm]
    rows = []
    for p in problems.filter(pl.col("split") == "train").iter_rows(named=True):
        pid = p["problem_id"]
        options = [None] if spec.traces == "none" else traces[spec.traces].get(pid, {}).get(spec.teacher_variant, [])
        attempt = wrong.get(pid) if "wrong_attempt" in spec.parts else None
        for trace in options:
            text = completion_for(arm, p, trace, attempt)
            if text:
                rows.append(dict(
                    arm=arm, problem_id=pid, split=p["split"], variant=variant_of(arm),
                    prompt=[{"role": "user", "content": user_message(p, captions.get(pid), variant_of(arm))}],
                    completion=[{"role": "assistant", "content": text}], image_sha=p["image_sha"],
                    sample_id=trace["sample_id"] if trace else None,
                    wrong_sample_id=attempt["sample_id"] if attempt else None))
    return pl.DataFrame(rows, schema=SCHEMAS["arms"])


def match(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Every non-empty arm restricted to the training problems all non-empty arms have an example for.
    Where they share none, the arm with the fewest problems is left out (emptied) until the rest share some,
    so one sparse arm cannot empty every other."""
    problems = {a: set(df["problem_id"]) for a, df in frames.items() if df.height}
    while problems and not set.intersection(*problems.values()):
        problems.pop(min(problems, key=lambda a: (len(problems[a]), a)))
    common = sorted(set.intersection(*problems.values())) if problems else []
    return {a: df.filter(pl.col("problem_id").is_in(common)) for a, df in frames.items()}


def arm_stats(frames: dict[str, pl.DataFrame], before: dict[str, pl.DataFrame], verdicts: pl.DataFrame,
              coverage: str, reasons: dict[str, str]) -> pl.DataFrame:
    """Per arm: built or why not, problems and examples (and those left out to match coverage), the
    examples whose teacher answer disagrees with the dataset's (unverified arms), and the examples
    that quote a wrong attempt (arms with one)."""
    wrong_ids = set(verdicts.filter(pl.col("correct") == False)["sample_id"])  # noqa: E712
    rows = []
    for arm, df in frames.items():
        spec = ARM[arm]
        rows.append(dict(
            arm=arm, built=df.height > 0, reason=None if df.height else reasons.get(arm, "no training example"),
            coverage=coverage, problems=df["problem_id"].n_unique(), examples=df.height,
            unmatched_problems=before[arm]["problem_id"].n_unique() - df["problem_id"].n_unique(),
            answer_only=sum(answer_lines_only(c[0]["content"]) for c in df["completion"]),
            conflicts=int(df["sample_id"].is_in(sorted(wrong_ids)).sum()) if spec.traces in ("first", "all") else None,
            wrong_attempts=int(df["wrong_sample_id"].is_not_null().sum()) if "wrong_attempt" in spec.parts else None))
    return pl.DataFrame(rows, schema=SCHEMAS["arm_stats"])


def build_arms(arms: list[str], problems: pl.DataFrame, captions: dict[str, str], samples: pl.DataFrame,
               verdicts: pl.DataFrame, selected: pl.DataFrame, teacher: str, coverage: str,
               finished_only: bool) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """({arm: training examples}, arm_stats) for the configured arms."""
    done = finished_samples(samples, verdicts, teacher, finished_only)
    traces, wrong = traces_by_problem(selected, done, teacher), shortest_wrong(done)
    before = {arm: build_arm(arm, problems, captions, traces, wrong) for arm in arms}
    frames = match(before) if coverage == "matched" else before
    reasons = {a: "shares no training problem with the other arms (arms.coverage: matched)"
               for a, df in before.items() if df.height}
    for arm in arms:
        spec = ARM[arm]
        if spec.traces != "none" and not any(spec.teacher_variant in v for v in traces[spec.traces].values()):
            reasons[arm] = f"no {'verified' if spec.traces == 'correct' else 'finished'} teacher trace " \
                           f"of the `{spec.teacher_variant}` variant for any training problem"
        elif arm == "teacher_cot" and not before[arm].height:
            reasons[arm] = NO_COT
    return frames, arm_stats(frames, before, verdicts, coverage, reasons)


def require_teacher(samples: pl.DataFrame, teacher: str, cfg: FactoryConfig) -> None:
    """The arms' teacher must have samples: a misspelt `arms.teacher` is an error, not an empty arm."""
    if samples.filter(pl.col("teacher") == teacher).height:
        return
    known = sorted(samples["teacher"].unique().to_list())
    named = f"arms.teacher {teacher!r}" if cfg.arms.teacher else f"the configured teacher {teacher!r}"
    raise InputError(f"no samples for {named}" + (f"; teachers with samples: {', '.join(known)}" if known else "")
                     + ("" if cfg.arms.teacher and known else ": run `distillery sample` first"))


def arm_unavailable(cfg: FactoryConfig, arm: str) -> str | None:
    """Why `arm` cannot be built with this config (None: it can): the sampled teacher was not asked
    in a prompt variant the arm is built from."""
    missing = [v for v in ARM[arm].variants if v not in cfg.sample.variants]
    if cfg.arms.teacher or not missing:
        return None
    return f"built from the teacher's `{missing[0]}` samples, and sample.variants has no `{missing[0]}`"


def run_arms(cfg: FactoryConfig, data: DataDir, teacher: str) -> dict:
    """Builds every configured arm from the selections of teacher `teacher` (the arms teacher,
    students.backends.arms_teacher); returns row counts per arm and how many training problems copy
    a val / test problem (left out by default)."""
    data.shards()  # problems exist
    inputs = [p for t in ("problems", "samples", "verdicts", "selected") for p in data.table(t).rglob("*.parquet")]
    inputs += list((data.table("captions") / cfg.caption.captioner).rglob("*.parquet"))
    settings = [cfg.arms, cfg.sample.variants, cfg.caption.captioner, teacher, cfg.select.finished_only]
    code = [Path(m.__file__) for m in (decontam_mod, experiment_mod, select_mod)]
    fp = fingerprints.fingerprint(settings, inputs + [Path(__file__), *code])
    flags_file = data.table("contamination") / "flags.parquet"
    buildable = [a for a in cfg.arms.arms if not arm_unavailable(cfg, a)]
    built = [data.arm(a) / "train.parquet" for a in buildable]
    stats_file = data.table("arm_stats") / "arm_stats.parquet"
    if fingerprints.unchanged([flags_file, stats_file, *built], fp):
        return arms_result(cfg, teacher, read_table(flags_file, "contamination"),
                           read_table(stats_file, "arm_stats")) | {"unchanged": True}
    problems = read_table(data.table("problems"), "problems")
    samples = read_table(data.table("samples"), "samples")
    selected = read_table(data.table("selected"), "selected")
    if any(ARM[a].variants for a in buildable):  # a teacher's arm
        require_teacher(samples, teacher, cfg)
        if not selected.filter(pl.col("teacher") == teacher).height:
            raise InputError(f"no selections for teacher {teacher!r} in {data.table('selected')}: run "
                             "`distillery verify` and `distillery select` first")
    flags = run_decontam(cfg, data, problems)
    problems = problems.filter(~pl.col("problem_id").is_in(left_out(cfg, flags).implode()))
    for arm in (a for a in cfg.arms.arms if a not in buildable):  # an older build would not fit this config
        (data.arm(arm) / "train.parquet").unlink(missing_ok=True)
    frames, stats = build_arms(buildable, problems, data.captions(cfg.caption.captioner), samples,
                               read_table(data.table("verdicts"), "verdicts"), selected, teacher, cfg.arms.coverage,
                               cfg.select.finished_only)
    for arm, df in frames.items():
        write_table(df, data.arm(arm) / "train.parquet", "arms")
    write_table(stats, stats_file, "arm_stats")
    fingerprints.record([flags_file, stats_file, *built], fp)
    return arms_result(cfg, teacher, flags, stats) | {"unchanged": False}


def arm_not_built(data: DataDir, arm: str) -> str | None:
    """Why the arms stage built no example of `arm` (None: it did, or it has not run)."""
    stats = read_table(data.table("arm_stats") / "arm_stats.parquet", "arm_stats").filter(pl.col("arm") == arm)
    return stats["reason"][0] if stats.height and not stats["built"][0] else None


def arms_result(cfg: FactoryConfig, teacher: str, flags: pl.DataFrame, stats: pl.DataFrame) -> dict:
    """Row counts per arm, the arms skipped or not built and why, and the training problems that
    copy a val / test problem (left out by default)."""
    skipped = {a: r for a in cfg.arms.arms if (r := arm_unavailable(cfg, a))}
    skipped |= {r["arm"]: r["reason"] for r in stats.iter_rows(named=True) if not r["built"]}
    counts = {r["arm"]: r["examples"] for r in stats.iter_rows(named=True)}
    return {"rows": counts, "skipped": skipped, "teacher": teacher, "coverage": cfg.arms.coverage,
            "contaminated": flags.filter(pl.col("kind") == "text")["problem_id"].n_unique(),
            "image_overlap": flags.filter(pl.col("kind") == "image")["problem_id"].n_unique(),
            "left_out": left_out(cfg, flags).len()}

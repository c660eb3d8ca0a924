"""The data stages' I/O beyond the per-shard runner (students/runner.py): the shards and samples
files to map over, what the sample stage's results mean, and the whole-table stages (arms, export,
audit, import). Opening a configured backend is students/backends.py's: the arms and export stages
are handed the arms teacher's identity (`students.backends.arms_teacher`).

A shard is a problems file, named by its path under problems/ without `.parquet`
(e.g. `synthetic/synthetic-00000`); every per-shard output mirrors that name.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from schemas import atomic
from schemas import experiment as experiment_mod
from schemas.config import FactoryConfig
from schemas.errors import InputError, StageFailed
from schemas.experiment import ARM
from schemas.paths import DataDir
from schemas.tables import empty, read_table, write_table
from tasks import arms as arms_mod
from tasks import decontam as decontam_mod
from tasks import fingerprints
from tasks import select as select_mod
from tasks.arms import build_arms
from tasks.audit import audit
from tasks.audit import summary as audit_summary
from tasks.decontam import contamination, left_out
from tasks.export import export_arm
from tasks.import_traces import ImportResult, import_traces
from tasks.sample import SampleResult
from tasks.teachers.secrets import api_key
from teacher_cache import CachedTeacher, CacheStats
from teacher_cache.prices import price_for


@dataclass
class Done:
    """What a shard stage did: the rows of its output, and whether it was skipped (unchanged)."""

    rows: int
    skipped: bool = False


def files_of(data: DataDir, table: str) -> list[str]:
    """A table's parquet files, as paths relative to its directory without the suffix."""
    root = data.table(table)
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.parquet"))


def shards(data: DataDir) -> list[str]:
    """Every problems shard; none is an error naming the stage to run."""
    found = files_of(data, "problems")
    if not found:
        raise InputError(f"no problems in {data.table('problems')}: run `distillery ingest` first")
    return found


def sample_files(data: DataDir) -> list[str]:
    """Every samples file (any teacher): <teacher>/<shard>; none is an error naming the stage to run."""
    found = files_of(data, "samples")
    if not found:
        raise InputError(f"no samples in {data.table('samples')}: run `distillery sample` "
                         "(or `distillery import-traces`) first")
    return found


def teachers_sampled(samples: pl.DataFrame) -> list[str]:
    return sorted(samples["teacher"].unique().to_list())


def require_teacher(samples: pl.DataFrame, identity: str, cfg: FactoryConfig) -> None:
    """The arms' teacher must have samples: a misspelt `arms.teacher` is an error, not an empty arm."""
    if samples.filter(pl.col("teacher") == identity).height:
        return
    known = teachers_sampled(samples)
    named = f"arms.teacher {identity!r}" if cfg.arms.teacher else f"the configured teacher {identity!r}"
    raise InputError(f"no samples for {named}" + (f"; teachers with samples: {', '.join(known)}" if known else "")
                     + ("" if cfg.arms.teacher and known else ": run `distillery sample` first"))


def problems_of(data: DataDir, shard: str) -> pl.DataFrame:
    return read_table(data.table("problems") / f"{shard}.parquet", "problems")


def captions_of(data: DataDir, captioner: str, shard: str | None = None) -> dict[str, str]:
    root = data.table("captions") / captioner
    df = read_table(root / f"{shard}.parquet" if shard else root, "captions")
    return dict(zip(df["problem_id"], df["caption"], strict=True))


def arm_unavailable(cfg: FactoryConfig, arm: str) -> str | None:
    """Why `arm` cannot be built with this config (None: it can): the sampled teacher was not asked
    in a prompt variant the arm is built from."""
    missing = [v for v in ARM[arm].variants if v not in cfg.sample.variants]
    if cfg.arms.teacher or not missing:
        return None
    return f"built from the teacher's `{missing[0]}` samples, and sample.variants has no `{missing[0]}`"


def sample_outcome(cfg: FactoryConfig, results: list[SampleResult], total: CacheStats, teacher: str) -> list[str]:
    """Warnings about what was not sent or failed; a sample stage that produced nothing usable
    is an error naming the most common reasons."""
    rejects = sum((r.rejects for r in results), Counter())
    warnings = []
    if rejects.get("no_caption"):
        warnings.append(f"{rejects['no_caption']} image problems have no caption and were not sent: run "
                        "`distillery caption` first (or set sample.images for a vision teacher)")
    if rejects.get("prompt_too_long"):
        warnings.append(f"{rejects['prompt_too_long']} prompts over sample.max_prompt_tokens="
                        f"{cfg.sample.max_prompt_tokens} were not sent")
    requests = sum(r.requests for r in results)
    if requests == 0:
        why = ", ".join(f"{n} {reason}" for reason, n in rejects.most_common()) or \
            f"no problems in the splits {cfg.sample.splits}"
        raise StageFailed(f"nothing to ask teacher {teacher}: {why} (see rejects/sample-*)")
    if total.failed == requests:
        raise StageFailed(f"every request to teacher {teacher} failed ({total.failed}): {total.common_errors()}. "
                          "No answer was stored; fix this and run `distillery sample` again")
    if total.failed:
        warnings.append(f"{total.failed} of {requests} requests failed (a re-run retries them): "
                        f"{total.common_errors()}")
    return warnings


def problems_for(data: DataDir, sample_file: str) -> pl.DataFrame:
    """The problems shard a samples file mirrors (samples/<teacher>/<shard>)."""
    return problems_of(data, sample_file.split("/", 1)[1])


def code_of(*modules) -> list[Path]:
    """The source files whose logic a stage's output depends on (part of its fingerprint)."""
    return [Path(m.__file__) for m in modules]


def rows_in(path: Path) -> int:
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def run_audit(cfg: FactoryConfig, data: DataDir, judge: CachedTeacher | None = None) -> dict:
    """verify --audit over every samples file: data/reports/verify-audit/audit.parquet and audit.md."""
    frames = [audit(pl.read_parquet(data.table("samples") / f"{f}.parquet"), problems_for(data, f), cfg.verify, judge)
              for f in sample_files(data)]
    df = pl.concat(frames) if frames else empty("audit")
    out = data.table("reports") / "verify-audit"
    write_table(df, out / "audit.parquet", "audit")
    atomic.write_text(out / "audit.md", audit_summary(df))
    return {"samples": df.height, "report": str(out / "audit.md"),
            "accuracy": {g: df[g].mean() for g in ("rules", "mathruler", "math_verify", "judge")
                         if df[g].null_count() < df.height}}


def run_decontam(cfg: FactoryConfig, data: DataDir, problems: pl.DataFrame) -> pl.DataFrame:
    """Flags training problems that copy a val / test problem; writes contamination/flags.parquet."""
    flags = contamination(problems, cfg.arms.near_match, data.image)
    write_table(flags, data.table("contamination") / "flags.parquet", "contamination")
    return flags


def run_arms(cfg: FactoryConfig, data: DataDir, identity: str) -> dict:
    """Builds every configured arm from the selections of teacher `identity` (the arms teacher);
    returns row counts per arm and how many training problems copy a val / test problem (left out
    by default)."""
    shards(data)  # problems exist
    inputs = [p for t in ("problems", "samples", "verdicts", "selected") for p in data.table(t).rglob("*.parquet")]
    inputs += list((data.table("captions") / cfg.caption.captioner).rglob("*.parquet"))
    settings = [cfg.arms, cfg.sample.variants, cfg.caption.captioner, identity, cfg.select.finished_only]
    fp = fingerprints.fingerprint(settings, inputs + code_of(arms_mod, decontam_mod, experiment_mod, select_mod))
    flags_file = data.table("contamination") / "flags.parquet"
    built = [data.arm(a) / "train.parquet" for a in cfg.arms.arms if not arm_unavailable(cfg, a)]
    stats_file = data.table("arm_stats") / "arm_stats.parquet"
    if fingerprints.unchanged([flags_file, stats_file, *built], fp):
        return arms_result(cfg, identity, read_table(flags_file, "contamination"),
                           read_table(stats_file, "arm_stats")) | {"unchanged": True}
    problems = read_table(data.table("problems"), "problems")
    samples = read_table(data.table("samples"), "samples")
    selected = read_table(data.table("selected"), "selected")
    if any(ARM[a].variants and not arm_unavailable(cfg, a) for a in cfg.arms.arms):  # a teacher's arm
        require_teacher(samples, identity, cfg)
        if not selected.filter(pl.col("teacher") == identity).height:
            raise InputError(f"no selections for teacher {identity!r} in {data.table('selected')}: run "
                             "`distillery verify` and `distillery select` first")
    flags = run_decontam(cfg, data, problems)
    out = left_out(cfg, flags)
    problems = problems.filter(~pl.col("problem_id").is_in(out.implode()))
    verdicts = read_table(data.table("verdicts"), "verdicts")
    captions = captions_of(data, cfg.caption.captioner)
    for arm in cfg.arms.arms:
        if arm_unavailable(cfg, arm):
            (data.arm(arm) / "train.parquet").unlink(missing_ok=True)  # an older build would not fit this config
    buildable = [a for a in cfg.arms.arms if not arm_unavailable(cfg, a)]
    frames, stats = build_arms(buildable, problems, captions, samples, verdicts, selected, identity, cfg.arms.coverage,
                               cfg.select.finished_only)
    for arm, df in frames.items():
        write_table(df, data.arm(arm) / "train.parquet", "arms")
    write_table(stats, stats_file, "arm_stats")
    fingerprints.record([flags_file, stats_file, *built], fp)
    return arms_result(cfg, identity, flags, stats) | {"unchanged": False}


def arm_not_built(data: DataDir, arm: str) -> str | None:
    """Why the arms stage built no example of `arm` (None: it did, or it has not run)."""
    stats = read_table(data.table("arm_stats") / "arm_stats.parquet", "arm_stats").filter(pl.col("arm") == arm)
    return stats["reason"][0] if stats.height and not stats["built"][0] else None


def arms_result(cfg: FactoryConfig, identity: str, flags: pl.DataFrame, stats: pl.DataFrame) -> dict:
    """Row counts per arm, the arms skipped or not built and why, and the training problems that
    copy a val / test problem (left out by default)."""
    skipped = {a: r for a in cfg.arms.arms if (r := arm_unavailable(cfg, a))}
    skipped |= {r["arm"]: r["reason"] for r in stats.iter_rows(named=True) if not r["built"]}
    counts = {r["arm"]: r["examples"] for r in stats.iter_rows(named=True)}
    return {"rows": counts, "skipped": skipped, "teacher": identity, "coverage": cfg.arms.coverage,
            "contaminated": flags.filter(pl.col("kind") == "text")["problem_id"].n_unique(),
            "image_overlap": flags.filter(pl.col("kind") == "image")["problem_id"].n_unique(),
            "left_out": left_out(cfg, flags).len()}


def hub_token(cfg: FactoryConfig) -> str | None:
    """The Hugging Face token `export.push_to_hub` needs, or None when nothing is pushed."""
    if not cfg.export.push_to_hub:
        return None
    token = api_key(cfg.export.token_secret, cfg.export.token_env)
    if not token:
        raise InputError(f"export.push_to_hub is {cfg.export.push_to_hub!r} but there is no token: set "
                         f"{cfg.export.token_env} or export.token_secret")
    return token


def run_export(cfg: FactoryConfig, data: DataDir, teacher: str) -> dict[str, int]:
    """Exports every configured arm (data/exports/<arm>/) built from teacher `teacher` (the arms
    teacher); returns rows per arm."""
    token = hub_token(cfg)  # before any work: a push that cannot happen fails first
    tables = {t: read_table(data.table(t), t) for t in ("samples", "selected", "contamination")}
    return {arm: export_arm(cfg, data, arm, teacher, tables, token) for arm in cfg.arms.arms
            if not arm_unavailable(cfg, arm)}


def run_import(cfg: FactoryConfig, data: DataDir, file: str, teacher: str, source: str, variant: str = "plain",
               model: str | None = None, id_column: str | None = None, response_column: str | None = None,
               reasoning_column: str | None = None) -> ImportResult:
    """Imports a file of existing traces as samples of `teacher` (priced when its model is known)."""
    price = price_for("import", model or teacher, cfg.prices)
    return import_traces(data, file, teacher, source, variant, model, price, id_column, response_column,
                         reasoning_column)

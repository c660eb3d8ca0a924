"""What a run shows in the Prefect UI: progress of long stages (log lines and progress artifacts,
on the stage's flow run and on the factory run that called it) and the report (markdown, table
and link artifacts).
"""

import json
import re
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from schemas import progress
from schemas.progress import Snapshot


class FactoryProgress:
    """The factory run's own progress artifact: stages done, and the running stage's latest line."""

    def __init__(self, stages: list[str]):
        self.stages, self.index = stages, 0
        self.artifact = create_progress_artifact(0.0, description=f"{len(stages)} stages: {', '.join(stages)}")

    def enter(self, stage: str) -> None:
        self.index = self.stages.index(stage)
        self.show(0.0, f"stage {self.index + 1}/{len(self.stages)}: {stage}")

    def show(self, stage_pct: float, line: str) -> None:
        overall = 100 * (self.index + stage_pct / 100) / len(self.stages)
        update_progress_artifact(self.artifact, overall, description=line)

    def done(self) -> None:
        update_progress_artifact(self.artifact, 100.0, description="all stages done")


FACTORY: FactoryProgress | None = None  # set while a factory run calls its stages (subflows run inline)


@contextmanager
def factory_progress(stages: list[str]):
    global FACTORY
    FACTORY = FactoryProgress(stages)
    try:
        yield FACTORY
        FACTORY.done()
    finally:
        FACTORY = None


@contextmanager
def stage_progress(stage: str):
    """Every `schemas.progress` snapshot taken while the stage runs becomes a log line of its flow run
    and moves its progress artifact (and the factory's)."""
    logger = get_run_logger()
    artifact = create_progress_artifact(0.0, description=f"{stage}: starting")
    if FACTORY is not None:
        FACTORY.enter(stage)

    def show(snap: Snapshot) -> None:
        logger.info(snap.line())
        pct = 100 * snap.done / snap.total if snap.total else 0.0
        update_progress_artifact(artifact, pct, description=snap.line())
        if FACTORY is not None:
            FACTORY.show(pct, f"stage {FACTORY.index + 1}/{len(FACTORY.stages)}: {snap.line()}")

    remove = progress.listen(show)
    try:
        yield
    finally:
        remove()
    update_progress_artifact(artifact, 100.0, description=f"{stage}: done")


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def publish_report(run: str, report_md: Path, data_dir: Path) -> None:
    """The report as artifacts of the current flow run: markdown, tables of students, hypotheses
    and costs (from summary.json), and links to the report file and the data directory."""
    report_md, data_dir = Path(report_md).resolve(), Path(data_dir).resolve()
    create_markdown_artifact(report_md.read_text(), key=artifact_key("report", run),
                             description=f"distillery report for run {run} ({report_md})")
    summary = json.loads((report_md.parent / "summary.json").read_text())
    for name in ("students", "hypotheses", "costs"):
        if summary.get(name):
            create_table_artifact(summary[name], key=artifact_key(name, run), description=f"{name} of run {run}")
    create_link_artifact(report_md.as_uri(), link_text=f"report.md of run {run}", key=artifact_key("report-file", run),
                         description=f"{report_md} (and summary.json beside it)")
    html = report_md.with_suffix(".html")
    if html.exists():
        create_link_artifact(html.as_uri(), link_text=f"report.html of run {run}", key=artifact_key("report-html", run),
                             description="The report as one self-contained page with its plots.")
    create_link_artifact(data_dir.as_uri(), link_text=f"data directory {data_dir}", key=artifact_key("data-dir", run),
                         description="Every table (parquet), the students' adapters under students/, exports under "
                                     "exports/.")

"""The tool-use view (`evaluate.tools`, students/tools.py): per student and split, how often its answers
called a tool, which, and its accuracy with and without tool use, beside each zero-shot reference's
accuracy on the same split. H1's verdict (the tool-calling student against a reference on val) is in
`reports/verdicts.py`."""

import polars as pl

from reports.views import cell
from students.choose import greedy
from students.tools import TOOLS


def tool_answers(evals: pl.DataFrame) -> pl.DataFrame:
    """Greedy answers given with the tools offered, to the chain-of-thought prompt (else the first style)."""
    return greedy(evals.filter(pl.col("variant") == TOOLS), TOOLS)


def reference_answers(evals: pl.DataFrame) -> pl.DataFrame:
    """The references' greedy zero-shot answers, asked plain (the caption in their prompt, no tools)."""
    return greedy(evals, "plain").filter(pl.col("arm") == "reference")


def tool_use(evals: pl.DataFrame, confidence: float) -> list[dict]:
    """Rows per (student, split): answers, tool-call rate (answers with at least one call; interval, n), the
    share calling each tool, calls per answer, accuracy over all, with and without tool use, and each
    reference's accuracy on that split (None where it has none)."""
    answers, refs = tool_answers(evals), reference_answers(evals)
    if answers.is_empty():
        return []
    names = sorted(answers["tool_calls"].explode().drop_nulls().unique().to_list())
    ref_names = sorted(refs["student"].unique().to_list())
    rows = []
    for (student, split), g in answers.sort("student", "split").group_by("student", "split", maintain_order=True):
        calls = g["tool_calls"].fill_null([])
        used = calls.list.len() > 0
        on_split = refs.filter(pl.col("split") == split)
        rows.append(dict(student=student, split=split, answers=g.height, tool_call_rate=cell(used, confidence),
                         **{f"calls {n}": float(calls.list.contains(n).mean()) for n in names},
                         calls_per_answer=f"{calls.list.len().mean():.2f}",
                         accuracy=cell(g["correct"], confidence),
                         with_tool_use=cell(g.filter(used)["correct"], confidence),
                         without_tool_use=cell(g.filter(~used)["correct"], confidence),
                         **{f"{r} (zero-shot)": cell(c, confidence) if (c := on_split.filter(
                             pl.col("student") == r)["correct"]).len() else None for r in ref_names}))
    return rows

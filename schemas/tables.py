"""Declared parquet schemas, one per table, and the only functions that read and write them.

Writers go through `write_table`, which selects and casts exactly the declared columns and
writes atomically (temp file + rename), so a stage that dies leaves no half-written shard.
"""

import errno
import os
import re
from pathlib import Path

import polars as pl

from schemas.atomic import sweep, temp_path

MESSAGE = pl.Struct({"role": pl.String, "content": pl.String})

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "problems": {
        "problem_id": pl.String,  # stable hash of (source, source_id)
        "source": pl.String,
        "source_id": pl.String,
        "split": pl.String,  # train | val | test
        "question": pl.String,
        "choices": pl.List(pl.String),  # empty for free-form answers
        "answer": pl.String,  # gold answer text (the option text for multiple choice)
        "answer_index": pl.Int32,  # gold option index; null for free-form answers
        "answer_type": pl.String,  # multiple_choice | numeric | free_form
        "hint": pl.String,  # context shipped with the question ("" when none)
        "lecture": pl.String,  # the general principle (retrieved-context stand-in)
        "solution": pl.String,  # the dataset's own step-by-step solution
        "caption": pl.String,  # caption shipped with the data; null when none
        "image_sha": pl.String,  # sha256 of the PNG in images/; null when no image
        "subject": pl.String,
        "topic": pl.String,
        "category": pl.String,
        "grade": pl.String,
        "precision": pl.Int32,  # decimals a numeric answer is judged to; null: the tolerance decides
        "aliases": pl.List(pl.String),  # other acceptable answers (e.g. A-OKVQA direct answers)
        "unit": pl.String,  # the answer's unit where the dataset gives one ("" when none)
        "context": pl.String,  # the kind of image (MathVista: bar chart, geometry diagram, ...; "" when none)
        "skills": pl.List(pl.String),  # reasoning skills the dataset tags (MathVista)
        "origin": pl.String,  # the dataset a benchmark took the problem from (MathVista, CV-Bench; "" when none)
        "image_phash": pl.String,  # 64-bit perceptual hash of the image (hex): re-encoded copies match; null: none
    },
    "rejects": {
        "stage": pl.String,
        "source": pl.String,
        "source_id": pl.String,
        "reason": pl.String,  # short, countable reason
        "detail": pl.String,  # the specifics (field, value), never a secret
    },
    "captions": {
        "problem_id": pl.String,
        "image_sha": pl.String,
        "captioner": pl.String,
        "caption": pl.String,
        "prompt_tokens": pl.Int64,  # 0 for captions shipped with the data
        "completion_tokens": pl.Int64,
        "cost_usd": pl.Float64,  # null when the captioning model has no known price
    },
    "samples": {
        "sample_id": pl.String,  # hash of (request_key, sample_index)
        "problem_id": pl.String,
        "teacher": pl.String,
        "model": pl.String,
        "variant": pl.String,  # plain | lecture
        "sample_index": pl.Int32,
        "request_key": pl.String,
        "prompt": pl.String,  # the user message the teacher saw
        "reasoning": pl.String,  # separate chain of thought, when the teacher gives one
        "content": pl.String,  # the answer text (reasoning removed)
        "finish_reason": pl.String,  # stop | length
        "prompt_tokens": pl.Int64,
        "completion_tokens": pl.Int64,
        "latency_s": pl.Float64,  # wall time of the request (a batch's time shared out)
        "cost_usd": pl.Float64,  # tokens x the model's price; null when the model has no known price
    },
    "verdicts": {
        "sample_id": pl.String,
        "problem_id": pl.String,
        "teacher": pl.String,
        "variant": pl.String,
        "extracted": pl.String,  # the final answer found in the response; null if none
        "correct": pl.Boolean,  # null when the gold answer cannot be judged
        "grader": pl.String,
        "reason": pl.String,
        "found_by": pl.String,  # how the answer was found: marker | boxed | option_text | closing_sentence | judge | none
    },
    "selected": {
        "problem_id": pl.String,
        "teacher": pl.String,
        "variant": pl.String,
        "policy": pl.String,
        "sample_id": pl.String,  # null when no sample was correct
        "reasoning": pl.String,
        "content": pl.String,
        "n_samples": pl.Int32,
        "n_correct": pl.Int32,
        "n_unfinished": pl.Int32,  # samples that could not be kept: truncated, or no answer committed to
        "pass_at_1": pl.Float64,  # unbiased estimate from n_samples, n_correct
        "pass_at_k": pl.Float64,  # k = n_samples
    },
    "arms": {
        "arm": pl.String,
        "problem_id": pl.String,
        "split": pl.String,
        "variant": pl.String,  # prompt variant the student sees (plain | lecture)
        "prompt": pl.List(MESSAGE),  # trl conversational prompt
        "completion": pl.List(MESSAGE),  # trl conversational completion
        "image_sha": pl.String,
        "sample_id": pl.String,  # teacher sample the completion came from; null for raw arms
        "wrong_sample_id": pl.String,  # the teacher's wrong attempt quoted in it (mistakes); null for none
    },
    "arm_stats": {  # what each arm holds (tasks/arms.py arm_stats); arm_stats/arm_stats.parquet
        "arm": pl.String,
        "built": pl.Boolean,  # false: no training example (reason says why); not trained
        "reason": pl.String,
        "coverage": pl.String,  # matched: every arm on the problems all built arms cover | all
        "problems": pl.Int64,  # distinct training problems
        "examples": pl.Int64,
        "unmatched_problems": pl.Int64,  # problems the arm could use, left out so that the arms match
        "answer_only": pl.Int64,  # examples that state the answer and nothing else (a terse teacher's)
        "conflicts": pl.Int64,  # examples whose teacher answer disagrees with the dataset's (unverified arms)
        "wrong_attempts": pl.Int64,  # examples that quote a wrong teacher attempt (arms with one)
    },
    "contamination": {  # training problems that copy a val / test problem (tasks/decontam.py)
        "problem_id": pl.String,  # the training problem
        "match_id": pl.String,  # its closest val / test problem
        "match_split": pl.String,
        "score": pl.Float64,  # rapidfuzz ratio of the normalised texts, 0-100 (100: identical)
        "kind": pl.String,  # text: the same question (over the same picture, if any); image: the same picture
        "source": pl.String,  # the training problem's source
        "match_source": pl.String,  # the val / test problem's source
    },
    "audit": {  # verify --audit: each grader's verdict on the same samples (tasks/audit.py)
        "sample_id": pl.String,
        "problem_id": pl.String,
        "answer_type": pl.String,
        "response": pl.String,  # the end of the response (300 characters)
        "gold": pl.String,
        "found_by": pl.String,  # how the rules found the answer (as in verdicts)
        "rules": pl.Boolean,  # null: the grader cannot judge this sample
        "mathruler": pl.Boolean,
        "math_verify": pl.Boolean,
        "judge": pl.Boolean,  # null without verify.judge
    },
    "evals": {  # one row per (student or reference, problem, prompt style, decoding, sample index)
        "run": pl.String,
        "student": pl.String,  # ARM-METHOD (-sSEED for seeds other than 0), `base`, or `reference:NAME`
        "arm": pl.String,  # the arm; `base` for the untuned student, `reference` for a reference model
        "method": pl.String,  # lora | prompt_tuning | none | zero-shot
        "seed": pl.Int32,  # training seed; null for the base student and references
        "problem_id": pl.String,
        "split": pl.String,
        "prompt_style": pl.String,  # cot (reason, then answer) | direct (the answer alone)
        "variant": pl.String,  # the prompt variant asked under: plain | lecture (the lecture as test-time context)
        # | tools (the caption and lecture tools offered, neither in the prompt: students/tools.py)
        # | tools (the caption and lecture tools offered, neither in the prompt: students/tools.py)
        "decoding": pl.String,  # greedy | sampled (pass@k)
        "sample_index": pl.Int32,  # 0 for greedy; 0..k-1 for sampled answers
        "response": pl.String,  # the answer text that is graded
        "reasoning": pl.String,  # a separate chain of thought (reasoning models behind an API); else null
        "extracted": pl.String,
        "correct": pl.Boolean,  # null only when the gold answer cannot be judged; failed, truncated, unanswered
        # and ungradable answers are false
        "grader": pl.String,  # the verdict's grader; `failed`: the request failed; `timeout` / `error`: ungradable
        "found_by": pl.String,  # how the answer was found (as in verdicts); `none`: no answer committed to
        "finished": pl.Boolean,  # the answer ended (eos, its final answer sentence, a provider's stop); false: cut
        # by the token limit; null: the request failed
        "prompt_tokens": pl.Int64,
        "generated_tokens": pl.Int64,  # completion tokens
        "latency_s": pl.Float64,  # seconds per answer (a batch's time shared out)
        "cost_usd": pl.Float64,  # 0 for local models; null when the model has no known price
        "reasoning_score": pl.Float64,  # judge: 1 / 0; else ROUGE-L F1 with the gold solution; null: no solution
        "reasoning_correct": pl.Boolean,  # the judge's verdict, or ROUGE-L >= evaluate.rouge_threshold
        "reasoning_judge": pl.String,  # the judge's identity, or `rouge-l>=T`
        "eval_fingerprint": pl.String,  # hash of (adapter, evaluation settings, test problems)
        "tool_calls": pl.List(pl.String),  # variant `tools`: the tools the student called, in order ([]: none);
        # null: no tools offered (students/tools.py)
    },
}
LATER = {"evals": {"tool_calls"}}  # columns added after a table's first files: read as null from older files


def conform(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Exactly the declared columns, in order, cast to the declared types."""
    schema = SCHEMAS[table]
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: missing columns {missing}")
    return df.select([pl.col(c).cast(t, strict=True) for c, t in schema.items()])


def empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMAS[table])


def write_table(df: pl.DataFrame, path: Path, table: str) -> Path:
    """Write one shard atomically: the file is either absent or complete."""
    df = conform(df, table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    swept(path.parent)
    tmp = temp_path(path)
    try:
        df.write_parquet(tmp)
        os.replace(tmp, path)
    except (OSError, pl.exceptions.PolarsError) as e:  # polars reports an I/O error as "... (os error 28)"
        code = e.errno if isinstance(e, OSError) else io_errno(e)
        if code is None:
            raise
        raise disk_error(OSError(code, str(e)), path) from e
    finally:
        tmp.unlink(missing_ok=True)
    return path


_SWEPT: set[Path] = set()


def swept(directory: Path) -> None:
    """Removes a killed writer's leftovers from `directory`, once per process."""
    if directory not in _SWEPT:
        sweep(directory)
        _SWEPT.add(directory)


def io_errno(e: Exception) -> int | None:
    found = re.search(r"os error (\d+)", str(e))
    return int(found[1]) if found else None


def disk_error(e: OSError, path: Path) -> OSError:
    """A full disk or a failing one, as a sentence that names the file."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return OSError(e.errno, f"no space left on the device to write {path} (nothing already written was changed)")
    if e.errno == errno.EFBIG:
        return OSError(e.errno, f"{path} would exceed the file size limit (nothing already written was changed)")
    if e.errno == errno.EIO:
        return OSError(e.errno, f"input/output error writing {path} (a failing or full disk?)")
    return e


def read_table(path: Path, table: str) -> pl.DataFrame:
    """One shard file, or all shards under a directory (recursively); empty with the schema if none."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not files:
        return empty(table)
    try:
        return pl.read_parquet(files, schema=SCHEMAS[table], missing_columns="insert" if older(files, table) else "raise")
    except (pl.exceptions.PolarsError, OSError) as e:
        raise unreadable(files, table, e) from None


def older(files: list[Path], table: str) -> bool:
    """Whether some file lacks only columns added later (LATER): those are read as null."""
    later = LATER.get(table, set())
    if not later:
        return False
    try:
        lacking = [set(SCHEMAS[table]) - set(pl.read_parquet_schema(f)) for f in files]
    except (pl.exceptions.PolarsError, OSError):
        return False  # unreadable: the read says which file
    return any(lacking) and all(gone <= later for gone in lacking)


def unreadable(files: list[Path], table: str, e: Exception) -> ValueError:
    """Which of `files` cannot be read as `table`, and why, as an InputError."""
    from schemas.errors import InputError

    for f in files:
        try:
            pl.read_parquet_schema(f)
        except (pl.exceptions.PolarsError, OSError) as bad:
            return InputError(f"{f}: not a readable parquet file ({str(bad).splitlines()[0][:200]}); remove it, or "
                              "re-run the stage that writes it")
    return InputError(f"{files[0].parent}: the {table} files do not match the {table} schema "
                      f"({str(e).splitlines()[0][:200]}); were they written by another version? Re-run the stage")

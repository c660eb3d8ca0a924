"""The `ingest` section: where the problems come from, one model per kind of source."""

from typing import Annotated, Literal, get_args

from pydantic import BeforeValidator, Field, model_validator

from schemas.config.base import PathSetting, Section, Split


def default_source(value):
    """An ingest section without `source` is the built-in generator's (the embedded default)."""
    return {"source": "synthetic"} | value if isinstance(value, dict) and "source" not in value else value


class IngestBase(Section):
    limit_per_split: int | None = Field(None, ge=1, description="Keep at most this many problems per split.")
    shard_size: int = Field(200, ge=1, description="Problems per shard (one Prefect task and one file each).")


class SyntheticIngest(IngestBase):
    """The built-in generator of rendered visual STEM problems (the embedded default)."""

    source: Literal["synthetic"] = Field("synthetic", description="Problem source: the built-in generator.")
    n_problems: int = Field(40, ge=1, description="Number of problems to generate.")
    seed: int = Field(0, description="Generator seed; the same seed gives the same problems.")
    split_fractions: dict[Split, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        {"train": 0.6, "val": 0.1, "test": 0.3}, description="Share of problems per split (each 0-1, summing to 1).")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SyntheticIngest":
        total = sum(self.split_fractions.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ingest.split_fractions must sum to 1, not {total:g}: {dict(self.split_fractions)}")
        return self


class ScienceQAIngest(IngestBase):
    source: Literal["scienceqa"] = Field("scienceqa", description="Problem source: ScienceQA.")
    path: PathSetting | None = Field(
        None, description="A directory in the original release layout, a dataset saved with "
        "`datasets.save_to_disk`, or a Hugging Face hub id (default derek-thomas/ScienceQA).")


class Columns(Section):
    """Where each problem field is in a row: a column name, or a dotted path into a struct
    (metadata.category). Unset fields use the preset's column, else a column of the field's name."""

    id: str | None = Field(None, description="The row's id in the dataset (default: split and row number).")
    question: str | None = Field(None, description="The question text.")
    choices: str | None = Field(None, description="The options (a list); none or empty: a free-form question.")
    answer: str | None = Field(None, description="The answer: its text, or an option letter such as C or (C).")
    answer_index: str | None = Field(None, description="The answer as an option index (wins over answer).")
    image: str | None = Field(None, description="The image: decoded, {bytes, path}, bytes, a relative path, or "
                              "a list of these (the first is used).")
    hint: str | None = Field(None, description="Context shown with the question.")
    lecture: str | None = Field(None, description="Background text (the lecture prompt variant shows it).")
    solution: str | None = Field(None, description="The dataset's solution or rationale (a list: the first).")
    aliases: str | None = Field(None, description="Other acceptable answers (a list), e.g. A-OKVQA's direct answers.")
    precision: str | None = Field(None, description="Decimals a numeric answer is judged to.")
    unit: str | None = Field(None, description="The answer's unit.")
    answer_type: str | None = Field(None, description="The dataset's answer type (integer / float make it numeric).")
    split: str | None = Field(None, description="The row's split (mapped by splits).")
    subject: str | None = Field(None, description="Subject, for the report's breakdowns.")
    topic: str | None = Field(None, description="Topic, for the report's breakdowns.")
    grade: str | None = Field(None, description="Grade or level, for the report's breakdowns.")
    category: str | None = Field(None, description="Category, for the report's breakdowns.")
    caption: str | None = Field(None, description="A caption of the image shipped with the data.")
    context: str | None = Field(None, description="The kind of image (e.g. bar chart).")
    skills: str | None = Field(None, description="Reasoning skills the dataset tags (a list).")
    origin: str | None = Field(None, description="The dataset a benchmark took the problem from.")


class DatasetIngest(IngestBase):
    """A table of problems read through a column mapping: `hf` (a Hugging Face dataset), `files`
    (jsonl / json / parquet / csv), or a preset that needs no mapping."""

    source: Literal["hf", "files", "mathvista", "aokvqa", "clevr_cogent", "sat", "cvbench"] = Field(
        description="`hf` / `files` with a column mapping, or a preset: mathvista, aokvqa, clevr_cogent, sat, "
        "cvbench (tasks/sources/presets.py lists their columns and splits).")
    path: PathSetting | None = Field(
        None, description="A hub id, a save_to_disk directory, a data file or a directory of them; mathvista also "
        "reads its GitHub release layout (a directory with data/testmini.json). Presets default to their hub id.")
    name: str | None = Field(None, description="The hub dataset's config (subset), e.g. 2D for CV-Bench.")
    columns: Columns = Field(Columns(), description="Where each field is, over the preset's mapping.")
    splits: dict[str, Split] = Field({}, description="The dataset's split names mapped to ours (train / val / test), "
                                     "over the preset's (e.g. {validation: test}).")
    split: Split | None = Field(None, description="The split of rows whose split nothing else names.")
    images_dir: PathSetting | None = Field(None, description="Where relative image paths point (default: the data file's "
                                   "folder).")
    ocr: bool = Field(True, description="mathvista release layout: append the OCR'd text to the Bard caption.")


IngestConfig = Annotated[SyntheticIngest | ScienceQAIngest | DatasetIngest, Field(discriminator="source"),
                         BeforeValidator(default_source)]
SOURCE_NAMES = tuple(name for kind in get_args(get_args(IngestConfig)[0])  # every `source` the sections accept
                     for name in get_args(kind.model_fields["source"].annotation))

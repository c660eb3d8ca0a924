"""Problem sources: each yields `Record`s (or `Reject`s for rows it cannot use)."""

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass
class Record:
    """One problem as a source hands it over, before ids and image hashes are assigned."""

    source_id: str
    split: str
    question: str
    answer: str
    answer_type: str  # multiple_choice | numeric | free_form
    choices: list[str] = field(default_factory=list)
    answer_index: int | None = None
    hint: str = ""
    lecture: str = ""
    solution: str = ""
    caption: str | None = None
    image: bytes | None = None  # encoded image file (PNG, JPEG, ...)
    subject: str = ""
    topic: str = ""
    category: str = ""
    grade: str = ""
    precision: int | None = None  # decimals a numeric answer is judged to (MathVista's `precision`)
    aliases: list[str] = field(default_factory=list)  # other acceptable answers (A-OKVQA's direct answers)
    unit: str = ""  # the answer's unit, where the dataset gives one (MathVista)
    context: str = ""  # the kind of image (MathVista: "bar chart", "geometry diagram", ...)
    skills: list[str] = field(default_factory=list)  # reasoning skills the dataset tags (MathVista)
    origin: str = ""  # the dataset a benchmark took the problem from (MathVista's source, CV-Bench's)


class Reject(NamedTuple):
    source_id: str
    reason: str
    detail: str

"""The experiment, declared once: the arms (student training sets) and the hypotheses that
compare them. Config validation, the arms stage, dataset cards, training, the report and the
README's tables all read these two tables; adding an arm or a hypothesis is one entry.

An arm's completion is its `parts` (see `tasks/arms.py`: PARTS) joined by blank lines, then
`ending`: `answer` appends the gold answer sentence, `ensure` appends it only when the text does
not already commit to the gold answer, `none` leaves the text as it is. A problem gets an example
when at least one of `needs` is present (an arm with no `needs` covers every training problem).
"""

from dataclasses import dataclass
from typing import Literal

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class ArmSpec:
    name: str
    completion: str  # what the student learns, in words (docs, dataset cards)
    parts: tuple[str, ...]
    ending: Literal["answer", "ensure", "none"]
    prompt_variant: str = "plain"  # the prompt the student sees: plain | lecture
    teacher_variant: str | None = None  # the teacher samples it is built from; None: the dataset alone
    needs: tuple[str, ...] = ()


ARMS: tuple[ArmSpec, ...] = (
    ArmSpec("raw", "the dataset's solution and answer", ("solution",), "answer"),
    ArmSpec("teacher_answer", "the teacher's answer and short explanation, without its chain of thought",
            ("explanation",), "ensure", teacher_variant="plain", needs=("explanation",)),
    ArmSpec("teacher_cot", "the teacher's full selected reasoning trace (`<think>` reasoning kept)",
            ("cot",), "none", teacher_variant="plain", needs=("cot",)),
    ArmSpec("raw_plus_teacher", "the dataset's solution followed by the teacher's explanation",
            ("solution", "explanation"), "ensure", teacher_variant="plain", needs=("explanation",)),
    ArmSpec("teacher_lecture", "the teacher's explanation when shown the lecture, with the lecture in the prompt",
            ("explanation",), "ensure", prompt_variant="lecture", teacher_variant="lecture", needs=("explanation",)),
    ArmSpec("mistakes", "the dataset's solution, a wrong teacher attempt shown and corrected, and the teacher's "
            "correct explanation, with the lecture in the prompt", ("solution", "wrong_attempt", "explanation"),
            "ensure", prompt_variant="lecture", teacher_variant="plain", needs=("wrong_attempt", "explanation")),
    ArmSpec("answer_only", "the answer sentence alone", (), "answer"),
)
ARM_NAMES = tuple(a.name for a in ARMS)
ARM = {a.name: a for a in ARMS}


@dataclass(frozen=True)
class Hypothesis:
    id: str
    claim: str  # the research plan's words
    treatment: str  # an arm, or `best` (the most accurate trained arm)
    control: str  # an arm, or `reference:NAME` (a zero-shot reference model)
    direction: Direction  # what the claim predicts for treatment - control


HYPOTHESES: tuple[Hypothesis, ...] = (
    Hypothesis("H3.1", "learning from answer and solution of good model as opposed to learning from raw data "
               "lowers performance significantly", "teacher_answer", "raw", "lower"),
    Hypothesis("H3.2", "learning from answer and solution of good model AND answer and solution from training "
               "data also lowers performance significantly because of conflicts", "raw_plus_teacher", "raw", "lower"),
    Hypothesis("H3.3", "learning from good CoT of good model may lead to better performance than learning from "
               "the outputs (answer and solution) of the same good model", "teacher_cot", "teacher_answer", "higher"),
    Hypothesis("H3.4", "learning from answer and solution of good model and retrieved augmented context (in our "
               "simulation: lecture) can boost performance", "teacher_lecture", "teacher_answer", "higher"),
    Hypothesis("H3.5", "learning from mistakes of big model (answer and solution of train + answer and solution "
               "of big model + retrieved augmented context) can boost performance even further", "mistakes",
               "teacher_lecture", "higher"),
    Hypothesis("baseline", "training on the dataset's solutions beats training on its answers alone (the seeds' "
               "CoT-vs-answer baseline)", "raw", "answer_only", "higher"),
)
H36_CLAIM = ("fine-tuning on reasoning paths of domain task (with or without retrieved context) may be more "
             "efficient than fine-tuning on whole domain texts (compare performance of our best method to "
             "zero-shot inference of science model NOT tuned on this dataset, also compare with leaderboard. "
             "Also report differences in training and inference costs)")

"""The experiment, declared once: the arms (student training sets) and the hypotheses that
compare them. Config validation, the arms stage, dataset cards, training, the report and the
README's tables all read these two tables; adding an arm or a hypothesis is one entry.

An arm's completion is its `parts` (see `tasks/arms.py`: PARTS) joined by blank lines, ending with
an answer sentence in the form students are graded on (appended unless the text already ends with it):
the gold answer's (`ends_with: gold`), or, for the unverified policy ablation, the answer the teacher
sample itself committed to (`own`: gold-correcting it would make it a verified arm). `traces` says which teacher samples of `teacher_variant` an arm is built from, one
example each: `none` (the dataset alone: one example per problem), `correct` (the selected, verified
traces), `first` (the problem's first finished sample, whatever its verdict) or `all` (every finished
sample, unverified). A problem gets no example when a part in `needs` is missing.
"""

from dataclasses import dataclass
from typing import Literal

Direction = Literal["lower", "higher"]
WRONG_VARIANT = "plain"  # the teacher samples wrong attempts (the `mistakes` arms) are taken from


@dataclass(frozen=True)
class ArmSpec:
    name: str
    completion: str  # what the student learns, in words (docs, dataset cards)
    parts: tuple[str, ...]
    prompt_variant: str = "plain"  # the prompt the student sees: plain | lecture
    teacher_variant: str | None = None  # the teacher samples it is built from; None: the dataset alone
    traces: Literal["none", "correct", "first", "all"] = "none"
    needs: tuple[str, ...] = ()
    ends_with: Literal["gold", "own"] = "gold"

    @property
    def variants(self) -> tuple[str, ...]:
        """Every teacher prompt variant the arm reads samples of."""
        wrong = (WRONG_VARIANT,) if "wrong_attempt" in self.parts else ()
        return tuple(dict.fromkeys(((self.teacher_variant,) if self.teacher_variant else ()) + wrong))


ARMS: tuple[ArmSpec, ...] = (
    ArmSpec("raw", "the dataset's solution and answer", ("solution",)),
    ArmSpec("teacher_answer", "the teacher's solution as written for a reader (its visible answer text, reasoning "
            "paragraphs included; a separate chain of thought left out), verified correct",
            ("teacher_solution",), teacher_variant="plain", traces="correct", needs=("teacher_solution",)),
    ArmSpec("teacher_cot", "the teacher's separate chain of thought in `<think>` tags, then its solution, verified "
            "correct; not built for a teacher that gives no separate chain of thought",
            ("cot",), teacher_variant="plain", traces="correct", needs=("cot",)),
    ArmSpec("raw_plus_teacher", "the dataset's solution followed by the teacher's first solution, whatever its "
            "verdict (the plan's conflicts)", ("solution", "teacher_solution"), teacher_variant="plain",
            traces="first", needs=("teacher_solution",)),
    ArmSpec("teacher_lecture", "the teacher's solution when shown the lecture, verified correct, with the lecture "
            "in the prompt", ("teacher_solution",), prompt_variant="lecture", teacher_variant="lecture",
            traces="correct", needs=("teacher_solution",)),
    ArmSpec("mistakes", "the dataset's solution, the teacher's shortest wrong attempt (without the lecture) quoted "
            "and corrected where it made one, and its verified solution when shown the lecture, with the lecture "
            "in the prompt", ("solution", "wrong_attempt", "teacher_solution"), prompt_variant="lecture",
            teacher_variant="lecture", traces="correct", needs=("teacher_solution",)),
    ArmSpec("mistakes_no_attempt", "`mistakes` without the wrong attempt: the dataset's solution and the teacher's "
            "verified solution when shown the lecture, with the lecture in the prompt",
            ("solution", "teacher_solution"), prompt_variant="lecture", teacher_variant="lecture", traces="correct",
            needs=("teacher_solution",)),
    ArmSpec("teacher_all", "every finished teacher solution of the k sampled, unverified, ending with the teacher's "
            "own answer (the selection-policy ablation)", ("teacher_solution",), teacher_variant="plain",
            traces="all", needs=("teacher_solution",), ends_with="own"),
    ArmSpec("answer_only", "the answer sentence alone", ()),
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
    Hypothesis("H3.5-attempt", "the wrong attempt shown and corrected is what helps: `mistakes` beats the same "
               "solutions and context without the wrong attempt", "mistakes", "mistakes_no_attempt", "higher"),
    Hypothesis("policy", "keeping only verified-correct solutions (by select.policy) beats training on all k sampled "
               "solutions unverified (the selection-policy ablation)", "teacher_answer", "teacher_all", "higher"),
    Hypothesis("baseline", "training on the dataset's solutions beats training on its answers alone (the seeds' "
               "CoT-vs-answer baseline)", "raw", "answer_only", "higher"),
)
H36_CLAIM = ("fine-tuning on reasoning paths of domain task (with or without retrieved context) may be more "
             "efficient than fine-tuning on whole domain texts (compare performance of our best method to "
             "zero-shot inference of science model NOT tuned on this dataset, also compare with leaderboard. "
             "Also report differences in training and inference costs)")
# H1 and H2 compare a model with a zero-shot one, not two arms (reports/verdicts.py: h1_rows, h2_rows).
H1_CLAIM = ("a very small LM that decides to call tools (an image-captioning tool and a retrieval tool, simulated by "
            "the dataset's captions and lectures) compared with a big model zero-shot, on validation: the tool-calling "
            "student is predicted more accurate")
H2_CLAIM = ("soft prompting improves an existing good multimodal model: the soft-prompted (prompt_tuning) vlm student "
            "is predicted more accurate than the same model zero-shot")

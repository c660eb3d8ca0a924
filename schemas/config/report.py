"""The `report` section: statistics, the user's own hypotheses and published figures."""

from typing import Literal

from pydantic import Field

from schemas.config.base import Arm, Section


class LeaderboardEntry(Section):
    name: str = Field(description="The model or method, as the leaderboard names it.")
    accuracy: float = Field(ge=0.0, le=1.0, description="Its published accuracy, 0-1.")
    source: str = Field("", description="Where the figure comes from (paper, leaderboard URL).")


class HypothesisConfig(Section):
    id: str = Field(description="Short id in the report, e.g. H4.1.")
    claim: str = Field(description="The claim, in words.")
    treatment: Arm = Field(description="The arm the claim is about.")
    control: Arm = Field(description="The arm it is compared with.")
    direction: Literal["lower", "higher"] = Field(description="What the claim predicts for treatment - control.")


class ReportConfig(Section):
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Coverage of the accuracy (Wilson) and paired "
                              "difference intervals.")
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Level of the verdicts: a hypothesis is supported or "
                         "contradicted when its Holm-adjusted exact McNemar p is at most alpha; also the level of "
                         "the power calculation.")
    power: float = Field(0.8, gt=0.0, lt=1.0, description="Power for the smallest detectable difference.")
    discordance: float | None = Field(
        None, gt=0.0, le=1.0, description="Assumed share of discordant pairs (one student right, the other wrong) "
        "behind the detectable difference and the problems needed. Default: the observed share, but at least "
        "discordance_floor.")
    discordance_floor: float = Field(0.1, gt=0.0, le=1.0, description="The least discordant share assumed when "
                                     "it comes from the observed one (two students that agree everywhere do not "
                                     "make a test sensitive).")
    device_hour_usd: float | None = Field(
        None, ge=0.0, description="USD per device-hour of this machine (GPU or CPU), to put local training and "
        "answering in dollars beside API prices (H3.6's efficiency). Default: none; local costs are shown in "
        "device-seconds and their dollars as n/a.")
    hypotheses: list[HypothesisConfig] = Field(
        [], description="Your own hypotheses, tested beside the research plan's (schemas/experiment.py).")
    best_arm: str | None = Field(
        None, description="H3.6: the arm compared with the reference models. Default: the most accurate trained "
        "arm; either way its method and seed are chosen on val, and test is used once for the numbers.")
    leaderboard: list[LeaderboardEntry] = Field(
        [], description="Published figures shown beside H3.6 (never used in a verdict).")

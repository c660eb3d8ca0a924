"""The spending cap of one backend in one run (`endpoint.budget_usd`): what new requests may cost.

Before a request group leaves, the request engine reserves what it could cost at most: its prompt
(estimated from its characters, plus `IMAGE_TOKENS` a picture, scaled up by the most any answer so far
showed the estimate to fall short), `max_new_tokens` for each path, at the model's price. A group whose
reservation would take the spent and the reserved past the cap waits for the groups in flight (they cost
what they cost, less than reserved); if it still does not fit with none in flight, it is not sent: the
engine stops sending and the stage ends with `BudgetReached`, saying what was spent. Each answer counts
at its own tokens; a group the server may have charged for without an answer to read (no reply within
the time limit, cut off in flight, an unreadable body) or an answer reporting no tokens counts at its
reservation. So the spend stays under the cap, within one request group of it; should an estimate still
fall short and the spend pass the cap, the engine stops at once. Cached answers never reach the engine,
so they cost nothing here, and a re-run with a higher cap asks only what was not answered. All of it
runs on the engine's event loop thread.
"""

from schemas.config import ModelPrice
from schemas.errors import StageFailed
from teacher_cache.prices import cost_usd
from teacher_cache.types import Completion, Request

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600  # at most a picture costs in prompt tokens (gpt-4o high detail ~1,100, Gemini 258)


class BudgetReached(StageFailed):
    """The next request group could take the spend past endpoint.budget_usd (or the spend passed it)."""


class Budget:
    def __init__(self, cap_usd: float, price: ModelPrice, shares: int = 1):
        """`cap_usd`: this process's share of endpoint.budget_usd, one of `shares` (dask workers)."""
        self.cap, self.price, self.shares = cap_usd, price, shares
        self.spent = self.reserved = 0.0
        self.pending = 0  # groups reserved and not yet settled
        self.scale = 1.0  # the most an answered group's prompt tokens exceeded their estimate

    def estimate(self, reqs: list[Request]) -> float:
        """The most the group can cost: its prompt once (as `n` bills it), every path at max_new_tokens."""
        return cost_usd(self.price, int(prompt_estimate(reqs[0]) * self.scale), reqs[0].params.max_new_tokens * len(reqs))

    def reserve(self, reqs: list[Request]) -> float:
        """Reserves the group's most; raises BudgetReached when that would pass the cap."""
        most = self.estimate(reqs)
        if self.spent + self.reserved + most > self.cap:
            raise BudgetReached(self.said(f"the next request group could cost up to ${most:.4f}"))
        self.reserved += most
        self.pending += 1
        return most

    def settle(self, reqs: list[Request], reserved: float, got: list[Completion] | None, billed: bool) -> None:
        """The group's reservation released and its cost counted: its answers' tokens; its reservation
        where it may have been charged without answers to count (`billed`) or they report no tokens."""
        self.pending -= 1
        self.reserved = self.reserved - reserved if self.pending else 0.0  # no float residue once none is pending
        if not got:
            self.spent += reserved if billed else 0.0
            return
        prompt = sum(c.prompt_tokens for c in got)  # n paths share the prompt's tokens
        if prompt == 0 and sum(c.completion_tokens for c in got) == 0:
            self.spent += reserved  # the endpoint reported no usage: count the most it could be
            return
        self.spent += sum(cost_usd(self.price, c.prompt_tokens, c.completion_tokens) for c in got)
        self.scale = max(self.scale, prompt / prompt_estimate(reqs[0]))

    def over(self) -> "BudgetReached":
        return BudgetReached(self.said("the answers cost more than their estimate"))

    def said(self, why: str) -> str:
        share = f" (this worker's share of {self.shares}: ${self.cap:.4f})" if self.shares > 1 else ""
        return (f"spending cap reached: ${self.spent:.4f} spent on new requests, endpoint.budget_usd is "
                f"${self.cap * self.shares:.4f}{share} and {why}; everything received is stored: raise "
                "endpoint.budget_usd (or remove it) and run the command again to ask the rest (nothing is paid twice)")


def prompt_estimate(r: Request) -> int:
    """Prompt tokens from the characters, and the most its pictures may take."""
    return sum(len(c) for _, c in r.messages) // CHARS_PER_TOKEN + IMAGE_TOKENS * len(r.images) + 1

"""The spending cap of one stage's backend (`endpoint.budget_usd`): what new requests may cost.

Before a request group leaves, the request engine reserves what it could cost at most: its prompt
(estimated from its characters, scaled up by how far the answers so far showed the estimate falls short:
pictures, a tokenizer denser than 4 characters a token) and `max_new_tokens` for each path, at the model's
price. A group whose reservation would take the spent and the reserved past the cap waits for the groups
in flight (they cost what they cost, less than reserved); if it still does not fit with none in flight, it
is not sent: the engine stops sending and the stage ends with `BudgetReached`, saying what was spent. So
the spend stays under the cap, within one request group of it. Each answer then counts at its own tokens. Cached answers never reach the engine,
so they cost nothing here, and a re-run with a higher cap asks only what was not answered. All of it runs
on the engine's event loop thread.
"""

from schemas.config import ModelPrice
from schemas.errors import StageFailed
from teacher_cache.prices import cost_usd
from teacher_cache.types import Completion, Request

CHARS_PER_TOKEN = 4


class BudgetReached(StageFailed):
    """The next request group could take the stage's spend past endpoint.budget_usd."""


class Budget:
    def __init__(self, cap_usd: float, price: ModelPrice):
        self.cap, self.price = cap_usd, price
        self.spent = self.reserved = 0.0
        self.pending = 0  # groups reserved and not yet settled
        self.estimated = self.actual = 0  # prompt tokens of the answered groups: estimated, as billed

    def estimate(self, reqs: list[Request]) -> float:
        """The most the group can cost: its prompt once (as `n` bills it), every path at max_new_tokens."""
        prompt = sum(len(c) for _, c in reqs[0].messages) // CHARS_PER_TOKEN + 1
        scale = max(1.0, self.actual / self.estimated) if self.estimated else 1.0
        return cost_usd(self.price, int(prompt * scale), reqs[0].params.max_new_tokens * len(reqs))

    def reserve(self, reqs: list[Request]) -> float:
        """Reserves the group's most; raises BudgetReached when that would pass the cap."""
        most = self.estimate(reqs)
        if self.spent + self.reserved + most > self.cap:
            raise BudgetReached(
                f"spending cap reached: ${self.spent:.4f} spent on new requests, endpoint.budget_usd is "
                f"${self.cap:.4f} and the next request group could cost up to ${most:.4f}; everything received "
                "is stored: raise endpoint.budget_usd (or remove it) and run the command again to ask the rest "
                "(nothing is paid twice)")
        self.reserved += most
        self.pending += 1
        return most

    def settle(self, reqs: list[Request], reserved: float, got: list[Completion] | None) -> None:
        """The group's reservation released; its answers (None: it failed, nothing billed) counted."""
        self.pending -= 1
        self.reserved = self.reserved - reserved if self.pending else 0.0  # no float residue once none is pending
        if not got:
            return
        self.spent += sum(cost_usd(self.price, c.prompt_tokens, c.completion_tokens) for c in got)
        self.estimated += sum(len(c) for _, c in reqs[0].messages) // CHARS_PER_TOKEN + 1
        self.actual += sum(c.prompt_tokens for c in got)  # n paths share the prompt's tokens

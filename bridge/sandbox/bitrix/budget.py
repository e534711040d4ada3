"""The method time budget of the Bitrix24 emulator (`limits.md`, NOTES.md §5.2 and §9).

Per (method, webhook or app) the execution time of calls is summed in 10 one-minute baskets; a
basket's countdown starts at the first call of its minute and lasts 10 minutes. Every answer
reports the sum (`operating`) and when the oldest basket drops out (`operating_reset_at`). The sum
is checked before each call: the call that crosses the limit completes, the next one gets
429 `OPERATION_TIME_LIMIT`. The outer `batch` is not counted; each nested call counts against its
own method. Knobs: the limit (`None` turns it off, as on a self-hosted portal), a simulated cost
per call of a method (otherwise the measured time), and the basket length, so tests need not wait
minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bridge.sandbox.bitrix.values import method_name

BASKETS = 10
# What a call over the budget gets: status and code from limits.md, the text [inferred].
OVER_BUDGET = (429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
WEBHOOK = "webhook"  # the caller key of the portal's incoming webhook; apps use their client_id


@dataclass
class _Basket:
    minute: int
    first_at: float
    spent: float = 0.0


@dataclass
class Budget:
    limit_s: float | None = 480.0  # the cloud example in limits.md
    basket_s: float = 60.0
    method_cost_s: dict[str, float] = field(default_factory=dict)
    baskets: dict[tuple[str, str], list[_Basket]] = field(default_factory=dict)

    def exhausted(self, caller: str, method: str, now: float) -> bool:
        """Whether the method's sum is already over the limit for this caller (checked before)."""
        if self.limit_s is None:
            return False
        return sum(b.spent for b in self._current(caller, method, now)) > self.limit_s

    def spend(self, caller: str, method: str, started: float, finished: float) -> dict[str, Any]:
        """Count a finished call; the `operating` keys of its answer's `time` block."""
        baskets = self._current(caller, method, finished)
        minute = math.floor(started / self.basket_s)
        if not baskets or baskets[-1].minute != minute:
            baskets.append(_Basket(minute=minute, first_at=started))
        baskets[-1].spent += self.method_cost_s.get(method, finished - started)
        return {
            # An int Unix time in the docs; rounded up so a caller never retries too early.
            "operating_reset_at": math.ceil(baskets[0].first_at + BASKETS * self.basket_s),
            "operating": sum(b.spent for b in baskets),
        }

    def reset(self) -> None:
        self.baskets.clear()

    def _current(self, caller: str, method: str, now: float) -> list[_Basket]:
        baskets = self.baskets.setdefault((caller, method), [])
        window = BASKETS * self.basket_s
        baskets[:] = [b for b in baskets if b.first_at + window > now]
        return baskets


def configure(budget: Budget, body: dict[str, Any]) -> None:
    """Apply the `PATCH /_control/portals/{member_id}` knobs of the time budget."""
    if "operating_limit_s" in body:
        limit = body["operating_limit_s"]
        budget.limit_s = None if limit is None else _positive(limit, "operating_limit_s")
    if "basket_s" in body:
        budget.basket_s = _positive(body["basket_s"], "basket_s")
    if "method_cost_s" in body:
        costs = body["method_cost_s"]
        if not isinstance(costs, dict):
            raise ValueError("method_cost_s must be an object of method: seconds")
        budget.method_cost_s = {
            method_name(str(method)): _positive(cost, f"method_cost_s.{method}", zero=True)
            for method, cost in costs.items()
        }
    if body.get("reset_operating"):
        budget.reset()


def view(budget: Budget) -> dict[str, Any]:
    return {
        "operating_limit_s": budget.limit_s,
        "basket_s": budget.basket_s,
        "method_cost_s": dict(budget.method_cost_s),
    }


def _positive(value: Any, name: str, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} must be {'zero or more' if zero else 'positive'}")
    return float(value)

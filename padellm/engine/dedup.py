"""Stage 3: de-duplication of mentions predicted under several labels, as named strategies."""

from __future__ import annotations

from collections.abc import Callable

from padellm.engine.align import Mention
from padellm.errors import ConfigError, one_of_problem


def keep_all(mentions: list[Mention]) -> list[Mention]:
    return list(mentions)


def best_label_per_string(mentions: list[Mention]) -> list[Mention]:
    """The paper's rule: a mention string predicted under several labels keeps only the label whose
    prediction has the highest sequence log-probability (ties: the first label in label order)."""
    best: dict[str, str] = {}
    score: dict[str, float] = {}
    for m in mentions:
        if m.text not in best or m.logprob > score[m.text]:
            best[m.text], score[m.text] = m.label, m.logprob
    return [m for m in mentions if best[m.text] == m.label]


STRATEGIES: dict[str, Callable[[list[Mention]], list[Mention]]] = {"none": keep_all, "paper": best_label_per_string}


def dedup(mentions: list[Mention], strategy: str = "paper") -> list[Mention]:
    if strategy not in STRATEGIES:
        raise ConfigError(one_of_problem("dedup", STRATEGIES, strategy))
    return STRATEGIES[strategy](mentions)

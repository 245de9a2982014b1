"""What becomes of a customer's mail that would open a ticket: a ticket, a spam ticket, or
nothing (stored and ignored). Pure: the spam judgement and the rules' decision come in.

The order, first that speaks decides (docs/architecture.md, "Spam"):
1. a rule's `then.ignore = true`: ignored;
2. a rule's `then.spam`: true, a spam ticket; false, a ticket whatever the judgement says;
3. the judgement (core/spam.py: allowlist, then blocklist, then the filter's verdict): spam
   becomes what `[spam] action` says, a spam ticket ("spam") or nothing ("ignore");
4. else a ticket.
An allowlisted sender's judgement is never spam, so only a rule can make their mail spam or
ignore it: the operator wrote that rule on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mailbridge.core.rules import Decision, Rule, set_by
from mailbridge.core.spam import Judgement

__all__ = ["TICKET", "Disposition", "dispose"]

Outcome = Literal["ticket", "spam", "ignore"]


@dataclass(frozen=True, slots=True)
class Disposition:
    """The outcome, and why (for the `spam` event and `inbound_message.reason`)."""

    outcome: Outcome
    reason: str = ""  # 'rule "bulk mailers"', "blocklist: *@spam.example", "rspamd: …"


TICKET = Disposition("ticket")


def dispose(
    judgement: Judgement, decision: Decision, rules: Sequence[Rule], action: Outcome
) -> Disposition:
    """The outcome for a mail the rules decided on (`decision`) and `judgement` judged;
    `action` is `[spam] action`, what becomes of spam ("spam" or "ignore")."""
    actions = decision.actions
    if actions.ignore:
        return Disposition("ignore", _rule(rules, decision, "ignore"))
    if actions.spam is not None:
        reason = _rule(rules, decision, "spam")
        return Disposition("spam", reason) if actions.spam else Disposition("ticket", reason)
    if judgement.spam:
        return Disposition(action, judgement.reason)
    return TICKET


def _rule(rules: Sequence[Rule], decision: Decision, action: str) -> str:
    return f'rule "{set_by(rules, decision, action)}"'

"""Approvals answered in words: the one step a user turn takes before anything else.

While an approval is pending, a message that *is* an answer ("sure", "go ahead",
"no, don't"; read by the pure ``answers.classify``) decides it, exactly like
``Brain.decide``: the claim is atomic (first decision wins), recorded as
``decided_by: "user"`` with the words as the reason. The turn then settles it (runs
the tool or records the denial) and stores the words as an ``approval_answer`` block,
which the model never sees as a new request. Any other message decides nothing here:
the turn's settle step denies the pending call (``decided_by: "user_message"``).
"""

from __future__ import annotations

from typing import Literal

from parley.brain import answers
from parley.brain.runtime import AgentRuntime
from parley.events import ApprovalResolved
from parley.sessions.store import Store


async def decide_in_words(
    store: Store, runtime: AgentRuntime, session_id: str, text: str
) -> list[ApprovalResolved]:
    """Decide the session's pending approvals when ``text`` answers them; the
    decisions this call won (none when the words are no answer)."""
    pending = await store.list_approvals(session_id, "pending")
    if not pending:
        return []
    words = [w for a in pending for w in answers.action_words(a.name, runtime.label(a.name))]
    verdict = answers.classify(text, words)
    if verdict == "other":
        return []
    status: Literal["approved", "denied"] = "approved" if verdict == "approve" else "denied"
    resolved: list[ApprovalResolved] = []
    for approval in pending:
        won, _ = await store.claim_approval(
            session_id, approval.tool_call_id, status, "user", f"answered: {text}"
        )
        if won:
            resolved.append(ApprovalResolved(approval.tool_call_id, status, "user"))
    return resolved

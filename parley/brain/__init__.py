"""The brain: turns (user, opening, approval decisions), tools, rules and LLM models."""

from parley.brain.core import Brain, UserInput
from parley.brain.errors import TurnRejected
from parley.brain.runtime import AgentRuntime
from parley.brain.turn_stream import TurnStream

__all__ = ["AgentRuntime", "Brain", "TurnRejected", "TurnStream", "UserInput"]

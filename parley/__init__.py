"""Parley: one conversational brain served over text chat, browser voice and phone."""

__version__ = "0.1.0"

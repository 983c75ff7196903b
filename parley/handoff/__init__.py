"""Warm transfer to a human: the transfer state machine and its shared board."""

"""The JSON state store."""
from state.store import StateError, StateInvalid, StateLocked, StateStore

__all__ = ["StateError", "StateInvalid", "StateLocked", "StateStore"]

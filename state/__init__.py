"""The JSON state store."""
from state.store import StateError, StateLocked, StateStore

__all__ = ["StateError", "StateLocked", "StateStore"]

"""The state store: a local JSON file or an S3 object, and the project lock."""
from provisioner.state.store import RecordedState, StateError, StateInvalid, StateLocked, StateStore

__all__ = ["RecordedState", "StateError", "StateInvalid", "StateLocked", "StateStore"]

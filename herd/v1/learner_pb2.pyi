from herd.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class LearnerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LearnerStatus(_message.Message):
    __slots__ = ("learner_id", "learner_step", "frames", "last_losses", "param_version", "paused", "lease_holder", "holds_lease", "policy_lag")
    class LastLossesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    LEARNER_ID_FIELD_NUMBER: _ClassVar[int]
    LEARNER_STEP_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LAST_LOSSES_FIELD_NUMBER: _ClassVar[int]
    PARAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    LEASE_HOLDER_FIELD_NUMBER: _ClassVar[int]
    HOLDS_LEASE_FIELD_NUMBER: _ClassVar[int]
    POLICY_LAG_FIELD_NUMBER: _ClassVar[int]
    learner_id: str
    learner_step: int
    frames: int
    last_losses: _containers.ScalarMap[str, float]
    param_version: int
    paused: bool
    lease_holder: str
    holds_lease: bool
    policy_lag: float
    def __init__(self, learner_id: _Optional[str] = ..., learner_step: _Optional[int] = ..., frames: _Optional[int] = ..., last_losses: _Optional[_Mapping[str, float]] = ..., param_version: _Optional[int] = ..., paused: _Optional[bool] = ..., lease_holder: _Optional[str] = ..., holds_lease: _Optional[bool] = ..., policy_lag: _Optional[float] = ...) -> None: ...

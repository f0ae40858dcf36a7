from herd.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ActorStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActorStatus(_message.Message):
    __slots__ = ("actor_id", "env_steps", "episodes", "param_version", "mean_return", "num_episodes_in_mean", "num_envs", "paused", "env_steps_per_second")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ENV_STEPS_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    PARAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEAN_RETURN_FIELD_NUMBER: _ClassVar[int]
    NUM_EPISODES_IN_MEAN_FIELD_NUMBER: _ClassVar[int]
    NUM_ENVS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ENV_STEPS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    actor_id: str
    env_steps: int
    episodes: int
    param_version: int
    mean_return: float
    num_episodes_in_mean: int
    num_envs: int
    paused: bool
    env_steps_per_second: float
    def __init__(self, actor_id: _Optional[str] = ..., env_steps: _Optional[int] = ..., episodes: _Optional[int] = ..., param_version: _Optional[int] = ..., mean_return: _Optional[float] = ..., num_episodes_in_mean: _Optional[int] = ..., num_envs: _Optional[int] = ..., paused: _Optional[bool] = ..., env_steps_per_second: _Optional[float] = ...) -> None: ...

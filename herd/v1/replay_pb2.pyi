from herd.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InsertRequest(_message.Message):
    __slots__ = ("table", "sequence_id", "items", "num_items", "priorities", "timeout_ms", "actor_id", "ack_every", "packed")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_ITEMS_FIELD_NUMBER: _ClassVar[int]
    PRIORITIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACK_EVERY_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    table: str
    sequence_id: int
    items: _tensor_pb2.TensorMap
    num_items: int
    priorities: _containers.RepeatedScalarFieldContainer[float]
    timeout_ms: int
    actor_id: str
    ack_every: int
    packed: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, table: _Optional[str] = ..., sequence_id: _Optional[int] = ..., items: _Optional[_Union[_tensor_pb2.TensorMap, _Mapping]] = ..., num_items: _Optional[int] = ..., priorities: _Optional[_Iterable[float]] = ..., timeout_ms: _Optional[int] = ..., actor_id: _Optional[str] = ..., ack_every: _Optional[int] = ..., packed: _Optional[_Iterable[bytes]] = ...) -> None: ...

class InsertResponse(_message.Message):
    __slots__ = ("sequence_id", "keys", "keys_per_request")
    SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    KEYS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    sequence_id: int
    keys: _containers.RepeatedScalarFieldContainer[int]
    keys_per_request: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sequence_id: _Optional[int] = ..., keys: _Optional[_Iterable[int]] = ..., keys_per_request: _Optional[_Iterable[int]] = ...) -> None: ...

class SampleRequest(_message.Message):
    __slots__ = ("table", "batch_size", "num_batches", "timeout_ms")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_BATCHES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    table: str
    batch_size: int
    num_batches: int
    timeout_ms: int
    def __init__(self, table: _Optional[str] = ..., batch_size: _Optional[int] = ..., num_batches: _Optional[int] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class SampleResponse(_message.Message):
    __slots__ = ("keys", "probabilities", "data", "table_size")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TABLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[int]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    data: _tensor_pb2.TensorMap
    table_size: int
    def __init__(self, keys: _Optional[_Iterable[int]] = ..., probabilities: _Optional[_Iterable[float]] = ..., data: _Optional[_Union[_tensor_pb2.TensorMap, _Mapping]] = ..., table_size: _Optional[int] = ...) -> None: ...

class UpdatePrioritiesRequest(_message.Message):
    __slots__ = ("table", "keys", "priorities")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    PRIORITIES_FIELD_NUMBER: _ClassVar[int]
    table: str
    keys: _containers.RepeatedScalarFieldContainer[int]
    priorities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, table: _Optional[str] = ..., keys: _Optional[_Iterable[int]] = ..., priorities: _Optional[_Iterable[float]] = ...) -> None: ...

class UpdatePrioritiesResponse(_message.Message):
    __slots__ = ("num_updated",)
    NUM_UPDATED_FIELD_NUMBER: _ClassVar[int]
    num_updated: int
    def __init__(self, num_updated: _Optional[int] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tables: _Optional[_Iterable[str]] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[TableInfo]
    def __init__(self, tables: _Optional[_Iterable[_Union[TableInfo, _Mapping]]] = ...) -> None: ...

class TableInfo(_message.Message):
    __slots__ = ("name", "size", "max_size", "max_times_sampled", "num_inserts", "num_samples", "num_deletes", "sampler", "remover", "priority_exponent", "rate_limiter")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_TIMES_SAMPLED_FIELD_NUMBER: _ClassVar[int]
    NUM_INSERTS_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NUM_DELETES_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_FIELD_NUMBER: _ClassVar[int]
    REMOVER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_EXPONENT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITER_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    max_size: int
    max_times_sampled: int
    num_inserts: int
    num_samples: int
    num_deletes: int
    sampler: str
    remover: str
    priority_exponent: float
    rate_limiter: RateLimiterInfo
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., max_size: _Optional[int] = ..., max_times_sampled: _Optional[int] = ..., num_inserts: _Optional[int] = ..., num_samples: _Optional[int] = ..., num_deletes: _Optional[int] = ..., sampler: _Optional[str] = ..., remover: _Optional[str] = ..., priority_exponent: _Optional[float] = ..., rate_limiter: _Optional[_Union[RateLimiterInfo, _Mapping]] = ...) -> None: ...

class RateLimiterInfo(_message.Message):
    __slots__ = ("name", "samples_per_insert", "min_size_to_sample", "min_diff", "max_diff", "diff", "can_insert", "can_sample", "blocked_inserts", "blocked_samples", "insert_blocked_seconds", "sample_blocked_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_INSERT_FIELD_NUMBER: _ClassVar[int]
    MIN_SIZE_TO_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    MIN_DIFF_FIELD_NUMBER: _ClassVar[int]
    MAX_DIFF_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    CAN_INSERT_FIELD_NUMBER: _ClassVar[int]
    CAN_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_INSERTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    INSERT_BLOCKED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_BLOCKED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    samples_per_insert: float
    min_size_to_sample: int
    min_diff: float
    max_diff: float
    diff: float
    can_insert: bool
    can_sample: bool
    blocked_inserts: int
    blocked_samples: int
    insert_blocked_seconds: float
    sample_blocked_seconds: float
    def __init__(self, name: _Optional[str] = ..., samples_per_insert: _Optional[float] = ..., min_size_to_sample: _Optional[int] = ..., min_diff: _Optional[float] = ..., max_diff: _Optional[float] = ..., diff: _Optional[float] = ..., can_insert: _Optional[bool] = ..., can_sample: _Optional[bool] = ..., blocked_inserts: _Optional[int] = ..., blocked_samples: _Optional[int] = ..., insert_blocked_seconds: _Optional[float] = ..., sample_blocked_seconds: _Optional[float] = ...) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckpointResponse(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

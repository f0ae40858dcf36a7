"""Tensor codec: numpy arrays and torch tensors <-> ``herd.v1.Tensor`` / ``TensorMap`` protos.

Where it sits: every trajectory an actor inserts, every batch the learner samples and every
parameter set the learner publishes crosses a process boundary through these functions.
Nothing else in Herd reads or writes tensor bytes on the wire.

Wire format (``protos/herd/v1/tensor.proto``): dtype enum, shape, raw element bytes in
little-endian C order.

Costs:
- encode: one copy (``ndarray.tobytes``, which also makes non-contiguous inputs C-ordered),
  plus the copy protobuf itself makes when a bytes field is assigned. Write straight into
  the request (``encode_map(items, out=request.items)``): building a submessage and passing
  it to a constructor or ``CopyFrom`` copies every tensor once more.
- decode: reading ``Tensor.data`` returns a fresh ``bytes`` object (protobuf's copy); the
  array is a zero-copy ``np.frombuffer`` view over it and is therefore **read-only**. Call
  ``.copy()`` to write to it. ``to_torch`` makes one copy and returns a writable tensor.

bfloat16 has no numpy dtype: encode it from a torch tensor and decode it with
:func:`to_torch`; :func:`decode` raises ``WireError`` for it rather than hand back raw bits
that would silently compute wrong values.

Every validation failure raises :class:`WireError` (a ``ValueError``; servers map it to
``INVALID_ARGUMENT``) whose message names the tensor, e.g.
``tensor 'observation': 12 bytes, expected 16 for float32[2, 2]``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import numpy as np

from herd.v1 import tensor_pb2

if TYPE_CHECKING:
    import torch

Tensor = tensor_pb2.Tensor
TensorMap = tensor_pb2.TensorMap
ArrayLike = Union[np.ndarray, np.generic, "torch.Tensor"]

MAX_NDIM = 32
"""Most dimensions a decoded tensor may have."""
MAX_TENSOR_BYTES = 1 << 40
"""Shapes whose extent (zero dims counted as 1) exceeds this many bytes are rejected as absurd."""


class WireError(ValueError):
    """A tensor that cannot be encoded or a malformed tensor on the wire (INVALID_ARGUMENT)."""


@dataclasses.dataclass(frozen=True)
class _DType:
    enum: tensor_pb2.DType
    name: str
    itemsize: int
    numpy: Optional[np.dtype]  # little-endian; None for bfloat16
    torch_name: str


_SPECS = (
    _DType(tensor_pb2.DTYPE_FLOAT16, "float16", 2, np.dtype("<f2"), "float16"),
    _DType(tensor_pb2.DTYPE_BFLOAT16, "bfloat16", 2, None, "bfloat16"),
    _DType(tensor_pb2.DTYPE_FLOAT32, "float32", 4, np.dtype("<f4"), "float32"),
    _DType(tensor_pb2.DTYPE_FLOAT64, "float64", 8, np.dtype("<f8"), "float64"),
    _DType(tensor_pb2.DTYPE_INT8, "int8", 1, np.dtype("i1"), "int8"),
    _DType(tensor_pb2.DTYPE_INT16, "int16", 2, np.dtype("<i2"), "int16"),
    _DType(tensor_pb2.DTYPE_INT32, "int32", 4, np.dtype("<i4"), "int32"),
    _DType(tensor_pb2.DTYPE_INT64, "int64", 8, np.dtype("<i8"), "int64"),
    _DType(tensor_pb2.DTYPE_UINT8, "uint8", 1, np.dtype("u1"), "uint8"),
    _DType(tensor_pb2.DTYPE_BOOL, "bool", 1, np.dtype("?"), "bool"),
)
_DTYPES: dict[int, _DType] = {spec.enum: spec for spec in _SPECS}
_BY_NUMPY: dict[np.dtype, tensor_pb2.DType] = {
    spec.numpy.newbyteorder("="): spec.enum for spec in _SPECS if spec.numpy is not None
}


def _describe(spec: _DType, shape: Sequence[int]) -> str:
    return f"{spec.name}[{', '.join(str(d) for d in shape)}]"


# ---------------------------------------------------------------------------- encode


def encode_parts(value: ArrayLike, *, name: str = "tensor") -> tuple[tensor_pb2.DType, tuple[int, ...], bytes]:
    """``(dtype enum, shape, little-endian C-order bytes)`` of an array or tensor.

    The building block of :func:`encode`; the parameter stream (params.proto) uses it directly
    to put a ``TensorSpec`` in its manifest and the bytes in chunks.
    """
    torch = sys.modules.get("torch")  # a torch tensor implies torch is already imported
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu().resolve_conj().resolve_neg()
        if t.dtype == torch.bfloat16:
            # Same element size, so the int16 view exists for any strides; tobytes copies once.
            return tensor_pb2.DTYPE_BFLOAT16, tuple(t.shape), _le_bytes(t.view(torch.int16).numpy())
        try:
            arr = t.numpy()
        except TypeError as e:
            raise WireError(f"tensor {name!r}: unsupported dtype {t.dtype}") from e
    elif isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
    else:
        raise TypeError(f"tensor {name!r}: expected a numpy array or torch tensor, got {type(value).__name__}")
    if arr.ndim > MAX_NDIM:  # the receiver would reject it
        raise WireError(f"tensor {name!r}: {arr.ndim} dimensions, at most {MAX_NDIM} allowed")
    key = arr.dtype if arr.dtype.isnative else arr.dtype.newbyteorder("=")
    enum = _BY_NUMPY.get(key)
    if enum is None:
        supported = ", ".join(s.name for s in _DTYPES.values())
        raise WireError(f"tensor {name!r}: unsupported dtype {arr.dtype} (supported: {supported})")
    return enum, arr.shape, _le_bytes(arr)


def _le_bytes(arr: np.ndarray) -> bytes:
    little = arr.dtype.newbyteorder("<")
    if arr.dtype != little:  # only on big-endian data: the one case that costs a second copy
        arr = arr.astype(little)
    return arr.tobytes(order="C")


def encode(value: ArrayLike, *, name: str = "tensor", out: Optional[Tensor] = None) -> Tensor:
    """Encodes one array or tensor into ``out`` (a new ``Tensor`` if not given) and returns it."""
    dtype, shape, data = encode_parts(value, name=name)
    if out is None:
        out = Tensor()
    out.dtype = dtype
    del out.shape[:]
    out.shape.extend(shape)
    out.data = data
    return out


def encode_map(mapping: Mapping[str, ArrayLike], *, out: Optional[TensorMap] = None) -> TensorMap:
    """Encodes named arrays/tensors into ``out`` (cleared first; a new ``TensorMap`` if not given)."""
    if out is None:
        out = TensorMap()
    out.tensors.clear()
    for key, value in mapping.items():
        if not isinstance(key, str) or not key:
            raise WireError(f"tensor names must be non-empty strings, got {key!r}")
        encode(value, name=key, out=out.tensors[key])
    return out


# ---------------------------------------------------------------------------- decode


ITEMSIZE: dict[int, int] = {spec.enum: spec.itemsize for spec in _SPECS}
"""Element size in bytes of every wire dtype (``tensor_pb2.DType`` value -> bytes)."""


def tensor_nbytes(dtype: int, shape: Sequence[int], *, name: str = "tensor") -> int:
    """Byte size of a ``dtype`` tensor of ``shape``, validating both (``WireError`` naming ``name``)."""
    spec, shape = _check_spec(dtype, shape, name)
    return spec.itemsize * math.prod(shape)


def _validate(dtype: int, shape: Sequence[int], nbytes: int, name: str) -> tuple[_DType, tuple[int, ...]]:
    """Checks a tensor's dtype, shape and byte length; returns its dtype spec and shape."""
    spec, shape = _check_spec(dtype, shape, name)
    expected = spec.itemsize * math.prod(shape)
    if nbytes != expected:
        raise WireError(f"tensor {name!r}: {nbytes} bytes, expected {expected} for {_describe(spec, shape)}")
    return spec, shape


def _check_spec(dtype: int, shape: Sequence[int], name: str) -> tuple[_DType, tuple[int, ...]]:
    spec = _DTYPES.get(dtype)
    if spec is None:
        what = "unspecified (0)" if dtype == tensor_pb2.DTYPE_UNSPECIFIED else f"unknown value {dtype}"
        raise WireError(f"tensor {name!r}: dtype {what}")
    shape = tuple(int(d) for d in shape)
    if len(shape) > MAX_NDIM:
        raise WireError(f"tensor {name!r}: {len(shape)} dimensions, at most {MAX_NDIM} allowed")
    extent = spec.itemsize
    for d in shape:
        if d < 0:
            raise WireError(f"tensor {name!r}: negative dimension {d} in shape {list(shape)}")
        extent *= max(d, 1)
        if extent > MAX_TENSOR_BYTES:
            raise WireError(f"tensor {name!r}: absurd shape {list(shape)} (over {MAX_TENSOR_BYTES} bytes)")
    return spec, shape


def _check_bool(data: bytes | memoryview, name: str) -> None:
    if len(data) and np.frombuffer(data, np.uint8).max() > 1:
        raise WireError(f"tensor {name!r}: bool bytes must be 0 or 1")


def decode_parts(dtype: int, shape: Sequence[int], data: bytes | memoryview, *, name: str = "tensor") -> np.ndarray:
    """Validates ``(dtype, shape, data)`` and returns a zero-copy numpy view over ``data``.

    Read-only when ``data`` is immutable (``bytes``). The parameter stream uses it on slices of
    a reassembled buffer; :func:`decode` on ``Tensor`` messages.
    """
    spec, shape = _validate(dtype, shape, len(data), name)
    if spec.numpy is None:
        raise WireError(f"tensor {name!r}: bfloat16 has no numpy dtype; decode it with to_torch()")
    if spec.name == "bool":
        _check_bool(data, name)
    return np.frombuffer(data, dtype=spec.numpy).reshape(shape)


def decode(tensor: Tensor, *, name: str = "tensor") -> np.ndarray:
    """A ``Tensor`` message as a read-only numpy array (no copy beyond protobuf's own)."""
    return decode_parts(tensor.dtype, tensor.shape, tensor.data, name=name)


def decode_map(tensors: TensorMap, *, names: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
    """A ``TensorMap`` as ``{name: read-only array}``; with ``names``, exactly those must be present."""
    if names is not None:
        _check_names(tensors, names)
    return {key: decode(t, name=key) for key, t in tensors.tensors.items()}


def torch_from_parts(dtype: int, shape: Sequence[int], data: bytes | memoryview, *, name: str = "tensor") -> "torch.Tensor":
    """Validates ``(dtype, shape, data)`` and returns a writable torch tensor (one copy); any dtype."""
    import torch

    spec, shape = _validate(dtype, shape, len(data), name)
    if spec.name == "bool":
        _check_bool(data, name)
    torch_dtype = getattr(torch, spec.torch_name)
    if len(data) == 0:  # torch.frombuffer rejects empty buffers
        return torch.empty(shape, dtype=torch_dtype)
    # The bytearray is the one copy: torch must not alias an immutable bytes object.
    # (Little-endian wire bytes = native order on every host torch supports here.)
    return torch.frombuffer(bytearray(data), dtype=torch_dtype).reshape(shape)


def to_torch(tensor: Tensor, *, name: str = "tensor") -> "torch.Tensor":
    """A ``Tensor`` message as a writable CPU torch tensor, bfloat16 included."""
    return torch_from_parts(tensor.dtype, tensor.shape, tensor.data, name=name)


def to_torch_map(tensors: TensorMap, *, names: Optional[Sequence[str]] = None) -> dict[str, "torch.Tensor"]:
    """A ``TensorMap`` as ``{name: torch tensor}``; with ``names``, exactly those must be present."""
    if names is not None:
        _check_names(tensors, names)
    return {key: to_torch(t, name=key) for key, t in tensors.tensors.items()}


def _check_names(tensors: TensorMap, names: Sequence[str]) -> None:
    got, want = set(tensors.tensors.keys()), set(names)
    if got != want:
        raise WireError(f"tensor names: missing {sorted(want - got)}, unexpected {sorted(got - want)}")

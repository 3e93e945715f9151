"""What crosses between the grader and the sandbox: data only, framed and size-capped.

A message is a JSON header followed by zero or more arrays in ``.npy`` format, read with
``allow_pickle=False``. Values are ``None``, bools, ints, floats, strings, lists, tuples,
dicts with string keys, numpy arrays of numbers or bools, and torch tensors (which travel
as arrays and come back as tensors). Nothing else can cross: no pickles, no objects whose
methods could lie about what they are.

This module runs on both sides, so it imports only the standard library and numpy
(torch is imported lazily, only when a tensor is encoded or asked for).
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np

MAX_HEADER_BYTES = 1 << 20          # 1 MiB of JSON
MAX_ARRAY_BYTES = 64 << 20          # one array
MAX_MESSAGE_BYTES = 128 << 20       # everything in one message
MAX_DEPTH = 16


class WireError(Exception):
    """A message that is not well-formed data, or is too large."""


# ---- values <-> (JSON tree, arrays) ---------------------------------------------------

def _encode(value, arrays: list, depth: int):
    if depth > MAX_DEPTH:
        raise WireError("value is nested too deeply")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return {"int": str(value)}
    if kind is float:
        return {"float": repr(value)}
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return _encode(value.item(), arrays, depth)
    if kind is np.ndarray or isinstance(value, np.ndarray):
        return {"array": _add_array(np.array(value, copy=True).view(np.ndarray), arrays)}
    if _is_tensor(value):
        array = value.detach().cpu().numpy()
        return {"tensor": _add_array(np.array(array, copy=True), arrays)}
    if kind is list or kind is tuple:
        items = [_encode(item, arrays, depth + 1) for item in value]
        return {"list": items} if kind is list else {"tuple": items}
    if kind is dict:
        if not all(type(key) is str for key in value):
            raise WireError("dict keys must be strings")
        return {"dict": {key: _encode(item, arrays, depth + 1) for key, item in value.items()}}
    raise WireError(f"a {kind.__module__}.{kind.__qualname__} is not data "
                    "(expected arrays, numbers, strings, lists, tuples or dicts)")


def _is_tensor(value) -> bool:
    kind = type(value)
    return kind.__module__.startswith("torch") and kind.__name__ in ("Tensor", "Parameter")


def _add_array(array: np.ndarray, arrays: list) -> int:
    if array.dtype.kind not in "biuf":
        raise WireError(f"an array of dtype {array.dtype} is not numeric data")
    if array.nbytes > MAX_ARRAY_BYTES:
        raise WireError(f"an array of {array.nbytes} bytes is larger than {MAX_ARRAY_BYTES}")
    arrays.append(array)
    return len(arrays) - 1


def _decode(node, arrays: list, tensors: bool, depth: int):
    if depth > MAX_DEPTH:
        raise WireError("value is nested too deeply")
    if node is None or type(node) in (bool, str):
        return node
    if type(node) is not dict or len(node) != 1:
        raise WireError("malformed value")
    (tag, body), = node.items()
    if tag == "int" and type(body) is str and len(body) <= 64:
        return int(body)
    if tag == "float" and type(body) is str and len(body) <= 64:
        return float(body)
    if tag in ("array", "tensor") and type(body) is int and 0 <= body < len(arrays):
        array = arrays[body]
        if tag == "tensor" and tensors:
            import torch
            return torch.from_numpy(array.copy())
        return array
    if tag in ("list", "tuple") and type(body) is list:
        items = [_decode(item, arrays, tensors, depth + 1) for item in body]
        return items if tag == "list" else tuple(items)
    if tag == "dict" and type(body) is dict:
        return {str(key): _decode(item, arrays, tensors, depth + 1) for key, item in body.items()}
    raise WireError(f"malformed value (tag {tag!r})")


# ---- framing ----------------------------------------------------------------------------

def send(stream, header: dict, payload=None) -> None:
    """Write ``header`` (a JSON-able dict) and ``payload`` (any data value) to ``stream``."""
    arrays: list = []
    header = dict(header, payload=_encode(payload, arrays, 0))
    blobs = []
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        blobs.append(buffer.getvalue())
    text = json.dumps(header, allow_nan=False).encode()
    if len(text) > MAX_HEADER_BYTES:
        raise WireError("message header too large")
    if len(text) + sum(map(len, blobs)) > MAX_MESSAGE_BYTES:
        raise WireError("message too large")
    stream.write(struct.pack("<II", len(text), len(blobs)) + text)
    for blob in blobs:
        stream.write(struct.pack("<Q", len(blob)) + blob)
    stream.flush()


def _read_exactly(stream, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError("the other side closed the channel")
    return data


def receive(stream, tensors: bool = False) -> tuple[dict, object]:
    """Read one message: (header, payload). Raises EOFError or WireError."""
    header_size, count = struct.unpack("<II", _read_exactly(stream, 8))
    if header_size > MAX_HEADER_BYTES or count > 4096:
        raise WireError("message header too large")
    try:
        header = json.loads(_read_exactly(stream, header_size), parse_constant=_reject_constant)
    except ValueError as error:
        raise WireError(f"header is not JSON: {error}") from None
    if type(header) is not dict:
        raise WireError("header is not an object")
    arrays, total = [], header_size
    for _ in range(count):
        (size,) = struct.unpack("<Q", _read_exactly(stream, 8))
        total += size
        if size > MAX_ARRAY_BYTES + 4096 or total > MAX_MESSAGE_BYTES:
            raise WireError("message too large")
        try:
            array = np.load(io.BytesIO(_read_exactly(stream, size)), allow_pickle=False)
        except ValueError as error:
            raise WireError(f"array is not plain numeric data: {error}") from None
        if type(array) is not np.ndarray or array.dtype.kind not in "biuf":
            raise WireError("array is not plain numeric data")
        arrays.append(array)
    payload = _decode(header.pop("payload", None), arrays, tensors, 0)
    return header, payload


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")

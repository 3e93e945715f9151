"""What crosses between the grader and the sandbox: data only, framed and size-capped.

A message is a JSON header followed by zero or more arrays in ``.npy`` format, read with
``allow_pickle=False``. Values are ``None``, bools, ints, floats, strings, lists, tuples,
dicts with string keys, numpy arrays of numbers or bools, and torch tensors (which travel
as arrays and come back as tensors). Nothing else can cross: no pickles, no objects whose
methods could lie about what they are.

Reads loop until the framed length has arrived; on a real file descriptor, reads and
writes can be bounded by a ``deadline`` (a ``time.monotonic()`` value), so a peer that
stops reading or writing halfway cannot hang the other side. :func:`to_plain` turns
what a student may reasonably return (a ``defaultdict``, an ``OrderedDict``, a
``namedtuple``, a numpy scalar) into plain data *before* encoding, on the side that
holds the object; the format itself still refuses anything but plain data.

This module runs on both sides, so it imports only the standard library and numpy
(torch is imported lazily, only when a tensor is encoded or asked for).
"""
from __future__ import annotations

import io
import json
import os
import select
import struct
import time
from collections.abc import Mapping

import numpy as np

MAX_HEADER_BYTES = 1 << 20          # 1 MiB of JSON
MAX_ARRAY_BYTES = 64 << 20          # one array
MAX_MESSAGE_BYTES = 128 << 20       # everything in one message
MAX_DEPTH = 16


class WireError(Exception):
    """A message that is not well-formed data, or is too large."""


class WireTimeout(EOFError):
    """The other side did not finish sending or receiving a message before the deadline."""


# ---- what a student returns -> plain data (run where the object lives) --------------------

MAX_PLAIN_NODES = 100_000


def to_plain(value, _depth: int = 0, _count: list | None = None):
    """``value`` with Mapping, list and tuple subclasses made plain ``dict``/``list``/``tuple``,
    numpy scalars made Python numbers, and torch tensor subclasses made plain tensors.

    Anything else is returned as it is (and :func:`send` decides whether it is data). Dict
    keys that are numpy strings become ``str``; other non-string keys are left for
    :func:`send` to refuse.
    """
    count = _count if _count is not None else [0]
    count[0] += 1
    if _depth > MAX_DEPTH or count[0] > MAX_PLAIN_NODES:
        raise WireError("value is nested too deeply or is too large")
    kind = type(value)
    if value is None or kind in (bool, int, float, str, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return value.item() if value.dtype.kind in "biuf" else value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if _is_tensor_like(value):
        if not _is_tensor(value):
            import torch
            return torch.Tensor.as_subclass(value, torch.Tensor)
        return value
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            key = str(key) if isinstance(key, (str, np.str_)) else key
            plain[key] = to_plain(item, _depth + 1, count)
        return plain
    if isinstance(value, tuple):
        return tuple(to_plain(item, _depth + 1, count) for item in value)
    if isinstance(value, list):
        return [to_plain(item, _depth + 1, count) for item in value]
    return value


def _is_tensor_like(value) -> bool:
    return any(k.__module__ == "torch" and k.__name__ == "Tensor" for k in type(value).__mro__)


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

def encode(header: dict, payload=None) -> bytes:
    """One framed message: ``header`` (a JSON-able dict) and ``payload`` (any data value)."""
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
    parts = [struct.pack("<II", len(text), len(blobs)), text]
    for blob in blobs:
        parts += [struct.pack("<Q", len(blob)), blob]
    return b"".join(parts)


def send(stream, header: dict, payload=None, deadline: float | None = None) -> None:
    """Write one message to ``stream``, all of it; by ``deadline`` if one is given.

    On a file descriptor with a deadline the write is non-blocking and waits with
    ``select``; a reader that does not take the message in time raises :class:`WireTimeout`.
    """
    data = encode(header, payload)
    fd = _fileno(stream)
    if fd is None:
        stream.write(data)
        stream.flush()
        return
    waits = deadline is not None or not os.get_blocking(fd)
    view = memoryview(data)
    while view:
        if waits:
            _wait(fd, deadline, write=True)
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        view = view[written:]


def _fileno(stream):
    try:
        return stream.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):
        return None


def _wait(fd: int, deadline: float | None, write: bool = False) -> None:
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        raise WireTimeout("the other side did not answer in time")
    ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
    if not any(ready):
        raise WireTimeout("the other side did not answer in time")


def _read_exactly(stream, size: int, deadline: float | None = None) -> bytes:
    """Exactly ``size`` bytes, however many reads that takes; EOFError if the channel closes."""
    fd = _fileno(stream)
    if fd is not None and deadline is None and os.get_blocking(fd):
        fd = None   # a blocking descriptor: plain reads, each may return less than asked
    chunks, left = [], size
    while left > 0:
        if fd is not None:
            _wait(fd, deadline)
            try:
                data = os.read(fd, min(left, 1 << 20))
            except BlockingIOError:
                continue
        else:
            data = stream.read(left)
        if not data:
            raise EOFError("the other side closed the channel")
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)


def receive(stream, tensors: bool = False, deadline: float | None = None) -> tuple[dict, object]:
    """Read one message: (header, payload). Raises EOFError (WireTimeout past ``deadline``) or WireError."""
    header_size, count = struct.unpack("<II", _read_exactly(stream, 8, deadline))
    if header_size > MAX_HEADER_BYTES or count > 4096:
        raise WireError("message header too large")
    try:
        header = json.loads(_read_exactly(stream, header_size, deadline), parse_constant=_reject_constant)
    except ValueError as error:
        raise WireError(f"header is not JSON: {error}") from None
    if type(header) is not dict:
        raise WireError("header is not an object")
    arrays, total = [], header_size
    for _ in range(count):
        (size,) = struct.unpack("<Q", _read_exactly(stream, 8, deadline))
        total += size
        if size > MAX_ARRAY_BYTES + 4096 or total > MAX_MESSAGE_BYTES:
            raise WireError("message too large")
        try:
            array = np.load(io.BytesIO(_read_exactly(stream, size, deadline)), allow_pickle=False)
        except ValueError as error:
            raise WireError(f"array is not plain numeric data: {error}") from None
        if type(array) is not np.ndarray or array.dtype.kind not in "biuf":
            raise WireError("array is not plain numeric data")
        arrays.append(array)
    payload = _decode(header.pop("payload", None), arrays, tensors, 0)
    return header, payload


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")

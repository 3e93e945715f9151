"""What crosses from the sandbox to the grader is data only: no pickles, nothing oversized."""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch

from autograder import wire


def _round_trip(value, tensors=False):
    stream = io.BytesIO()
    wire.send(stream, {"ok": True}, value)
    stream.seek(0)
    header, payload = wire.receive(stream, tensors=tensors)
    assert header == {"ok": True}
    return payload


def test_data_round_trips_exactly():
    value = {"hs": np.arange(6.0).reshape(2, 3), "n": 3, "x": 0.1, "flag": True, "none": None,
             "pair": (np.float32(1.5), [1, "two"]), "ints": np.arange(4, dtype=np.int64)}
    back = _round_trip(value)
    assert back["pair"] == (1.5, [1, "two"]) and isinstance(back["pair"], tuple)
    np.testing.assert_array_equal(back["hs"], value["hs"])
    assert back["ints"].dtype == np.int64 and back["n"] == 3 and back["x"] == 0.1


def test_tensors_travel_as_arrays_and_can_come_back_as_tensors():
    tensor = torch.arange(6.0).reshape(2, 3)
    assert isinstance(_round_trip(tensor), np.ndarray)
    assert torch.equal(_round_trip(tensor, tensors=True), tensor)


class Liar:
    def __eq__(self, other):
        return True

    def __array__(self, *args, **kwargs):
        return np.zeros(3)


@pytest.mark.parametrize("value", [Liar(), np.array([Liar()], dtype=object), {1: "int key"},
                                   type("Sub", (tuple,), {})((1, 2)), np.array(["text"])])
def test_anything_that_is_not_plain_data_is_refused(value):
    with pytest.raises(wire.WireError):
        wire.send(io.BytesIO(), {}, value)


def test_a_pickled_array_is_refused_on_arrival():
    blob = io.BytesIO()
    np.save(blob, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    header = json.dumps({"payload": {"array": 0}}).encode()
    stream = io.BytesIO(struct.pack("<II", len(header), 1) + header
                        + struct.pack("<Q", len(blob.getvalue())) + blob.getvalue())
    with pytest.raises(wire.WireError, match="not plain numeric data"):
        wire.receive(stream)


def test_oversized_messages_are_refused_before_they_are_read():
    stream = io.BytesIO(struct.pack("<II", wire.MAX_HEADER_BYTES + 1, 0))
    with pytest.raises(wire.WireError, match="too large"):
        wire.receive(stream)
    with pytest.raises(wire.WireError, match="larger than"):
        wire.send(io.BytesIO(), {}, np.zeros(wire.MAX_ARRAY_BYTES // 8 + 1))


def test_a_truncated_message_is_an_end_of_channel():
    stream = io.BytesIO()
    wire.send(stream, {"ok": True}, np.zeros(10))
    with pytest.raises(EOFError):
        wire.receive(io.BytesIO(stream.getvalue()[:-5]))

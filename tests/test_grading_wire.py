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


# ---- framing: reads loop to the framed length, writes and reads have deadlines (issue 14, class 8)

class Trickle(io.RawIOBase):
    """A stream that hands out at most 7 bytes per read, like a pipe under load."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, size=-1):
        return self._data.read(min(size, 7) if size >= 0 else 7)


def test_a_message_read_in_many_short_reads_arrives_whole():
    stream = io.BytesIO()
    value = {"big": np.arange(100_000, dtype=np.float64), "text": "x" * 70_000}
    wire.send(stream, {"op": "plan"}, value)
    header, payload = wire.receive(Trickle(stream.getvalue()))
    assert header == {"op": "plan"} and payload["text"] == value["text"]
    np.testing.assert_array_equal(payload["big"], value["big"])


def test_a_large_message_crosses_a_pipe_with_deadlines():
    import os
    import threading
    import time
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    value = {"plan": "y" * 300_000, "array": np.ones((300, 300))}
    received = {}
    reader = threading.Thread(target=lambda: received.update(
        message=wire.receive(os.fdopen(read_end, "rb", buffering=0), deadline=time.monotonic() + 10)))
    reader.start()
    wire.send(os.fdopen(write_end, "wb", buffering=0), {"op": "plan"}, value, deadline=time.monotonic() + 10)
    reader.join(10)
    assert received["message"][1]["plan"] == value["plan"]


def test_a_peer_that_never_reads_cannot_block_a_write_past_its_deadline():
    import os
    import time
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    started = time.monotonic()
    with pytest.raises(wire.WireTimeout):
        wire.send(os.fdopen(write_end, "wb", buffering=0), {}, np.zeros(1 << 17), deadline=started + 0.5)
    assert time.monotonic() - started < 3
    os.close(read_end)


def test_a_peer_that_stops_halfway_cannot_block_a_read_past_its_deadline():
    import os
    import time
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    whole = io.BytesIO()
    wire.send(whole, {"ok": True}, np.zeros(100))
    os.write(write_end, whole.getvalue()[:50])           # half a message, then silence
    started = time.monotonic()
    with pytest.raises(wire.WireTimeout):
        wire.receive(os.fdopen(read_end, "rb", buffering=0), deadline=started + 0.5)
    assert time.monotonic() - started < 3
    os.close(write_end)


# ---- what students return is made plain before it is encoded (issue 14, class 5)

def test_mapping_and_sequence_subclasses_and_numpy_scalars_become_plain_data():
    import collections
    Pair = collections.namedtuple("Pair", "hs ys")
    value = {"d": collections.defaultdict(int, a=np.float32(1.5)), "o": collections.OrderedDict(b=np.int64(2)),
             "n": Pair(np.zeros(2), [np.bool_(True)]), "t": torch.nn.Parameter(torch.ones(2))}
    back = _round_trip(wire.to_plain(value))
    assert type(back["d"]) is dict and back["d"] == {"a": 1.5} and type(back["d"]["a"]) is float
    assert back["o"] == {"b": 2} and type(back["o"]["b"]) is int
    assert type(back["n"]) is tuple and back["n"][1] == [True]
    np.testing.assert_array_equal(back["t"], np.ones(2))


def test_to_plain_still_leaves_lying_objects_for_the_wire_to_refuse():
    with pytest.raises(wire.WireError):
        wire.send(io.BytesIO(), {}, wire.to_plain([Liar()]))
    with pytest.raises(wire.WireError):
        wire.send(io.BytesIO(), {}, wire.to_plain({1: "int key"}))


# ---- issue 19: the sandbox sends data, the grader decides ------------------------------------

def _sent(shape=(3, 4), grad_output=None):
    x = torch.zeros(shape)
    return [x], {}, {"wrt": [0], "grad_output": grad_output}


def test_the_grader_decides_whether_a_call_was_differentiable():
    from autograder.hidden import NOT_CONNECTED, judge_gradients
    g = np.ones((3, 4), np.float32)
    ok = judge_gradients("f", {"value": np.float32(1.0).reshape(()), "grads": {"0": g}, "params": {},
                               "note": None}, _sent())
    assert ok.differentiable and ok.reason is None
    detached = judge_gradients("f", {"value": np.array(1.0), "grads": {"0": None}, "params": {}, "note": None},
                               _sent())
    assert not detached.differentiable and detached.reason == NOT_CONNECTED
    # the sandbox's note can make a call fail, never pass; shapes are checked here
    noted = judge_gradients("f", {"value": np.array(1.0), "grads": {"0": g}, "params": {}, "note": "no"}, _sent())
    assert not noted.differentiable
    wrong = judge_gradients("f", {"value": np.ones((2, 2)), "grads": {"0": g}, "params": {}, "note": None},
                            _sent(grad_output=torch.ones(3, 4)))
    assert not wrong.differentiable and "shape" in wrong.reason


@pytest.mark.parametrize("record", [
    {"value": 1.0, "differentiable": True, "reason": None, "grads": {"0": None}, "params": {}},   # the old verdict
    {"value": 1.0, "grads": {"0": np.ones((3, 4))}, "params": {}, "note": None, "differentiable": True},
    {"value": 1.0, "grads": {"0": np.ones((4, 3))}, "params": {}, "note": None},                  # misshapen
    {"value": 1.0, "grads": {"1": np.ones((3, 4))}, "params": {}, "note": None},                  # another argument
    {"value": 1.0, "grads": {"0": None}, "params": {"w": "lies"}, "note": None},
])
def test_a_forged_gradient_record_is_malformed(record):
    from autograder.hidden import StudentError, shape_result
    with pytest.raises(StudentError, match="malformed"):
        shape_result("f", "gradients", record, _sent())


def test_the_sandbox_is_never_told_which_test_is_running():
    from autograder.sandbox import plan_cells
    plan = plan_cells([{"index": 0, "kind": "code", "source": "x = 1"},
                       {"index": 1, "kind": "test", "grade_id": "test_secret_name", "source": "check(x)"}])
    assert "test_secret_name" not in json.dumps(plan) and plan[1] == {"index": 1, "kind": "test"}

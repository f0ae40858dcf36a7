"""Cumulative Insert acknowledgements: the server's ack queue, the client's split of keys, and both over gRPC.

One ``InsertResponse`` acknowledges every request of the stream up to its ``sequence_id``;
``keys_per_request`` says how its keys split. Requests that allow it (``ack_every`` k) are
acknowledged k at a time, within ``ACK_DELAY_SECONDS``; a request a caller waits on, at once.
"""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest

from herd.interfaces import RateLimitTimeout
from herd.v1 import replay_pb2
from herd.wire.codec import encode_map
from herd.wire.replay_codec import decode_insert
from herd.wire.status import UnavailableError
from replay_service import insert_acks, insert_stream
from replay_service.client import ReplayClient
from replay_service.insert_stream import _Pending, _resolve, ack_every_for
from replay_service.insert_acks import END as _END, MAX_ACKS_PER_MESSAGE, AckQueue as _AckQueue, Stored as _Stored


def stored(seq: int, ack_every: int = 1) -> _Stored:
    return _Stored(seq, [100 + seq], None, 0, ack_every)  # type: ignore[arg-type]


def take_in_thread(acks: _AckQueue, delay: float) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(acks.take(delay)), daemon=True)
    thread.start()
    return thread, out


# ---------------------------------------------------------------------------- the server's ack queue
def test_everything_queued_is_acknowledged_together():
    acks = _AckQueue()
    for seq in (1, 2, 3):
        acks.put(stored(seq))
    taken, end = acks.take(delay=30)
    assert [s.sequence_id for s in taken] == [1, 2, 3] and end is None


def test_ack_every_waits_for_company_and_is_woken_by_the_kth_request():
    acks = _AckQueue()
    acks.put(stored(1, ack_every=3))
    thread, out = take_in_thread(acks, delay=60)  # a missed wake-up would hold it for a minute
    acks.put(stored(2, ack_every=3))
    thread.join(0.3)
    assert thread.is_alive()  # two of three: still waiting
    acks.put(stored(3, ack_every=3))
    thread.join(10)
    assert not thread.is_alive()
    assert [s.sequence_id for s in out[0][0]] == [1, 2, 3]


def test_a_request_someone_waits_on_ends_the_wait():
    acks = _AckQueue()
    acks.put(stored(1, ack_every=4))
    thread, out = take_in_thread(acks, delay=60)
    acks.put(stored(2, ack_every=1))  # from TableClient.insert: its caller is blocked on it
    thread.join(10)
    assert not thread.is_alive()
    assert [s.sequence_id for s in out[0][0]] == [1, 2]


def test_the_wait_is_bounded_by_the_delay():
    acks = _AckQueue()
    acks.put(stored(1, ack_every=8))
    taken, end = acks.take(delay=0.01)
    assert [s.sequence_id for s in taken] == [1] and end is None


def test_an_idle_stream_is_acknowledged_at_once():
    acks = _AckQueue()
    acks.put(stored(1, ack_every=4))
    assert len(acks.take(delay=0.01)[0]) == 1
    thread, out = take_in_thread(acks, delay=0.01)  # nothing queued: waits for any request after the delay
    thread.join(0.3)
    assert thread.is_alive()
    acks.put(stored(2, ack_every=4))
    thread.join(10)
    assert not thread.is_alive() and [s.sequence_id for s in out[0][0]] == [2]


@pytest.mark.parametrize("end", [_END, ValueError("bad tensor")])
def test_the_end_comes_after_the_requests_before_it(end):
    acks = _AckQueue()
    acks.put(stored(1, ack_every=4))
    thread, out = take_in_thread(acks, delay=60)
    acks.finish(end)
    thread.join(10)
    taken, got = out[0]
    assert [s.sequence_id for s in taken] == [1] and got is end
    assert acks.take(delay=0) == ([], end)


def test_one_message_acknowledges_at_most_the_limit():
    acks = _AckQueue()
    for seq in range(1, MAX_ACKS_PER_MESSAGE + 7):
        acks.put(stored(seq))
    acks.finish(_END)
    first, end = acks.take(delay=0)
    assert len(first) == MAX_ACKS_PER_MESSAGE and end is None  # the end waits for the rest
    rest, end = acks.take(delay=0)
    assert [s.sequence_id for s in rest] == list(range(MAX_ACKS_PER_MESSAGE + 1, MAX_ACKS_PER_MESSAGE + 7))
    assert end is _END


def test_the_ack_message_splits_keys_per_request():
    one = insert_acks.ack_message([stored(5)])
    assert (one.sequence_id, list(one.keys), list(one.keys_per_request)) == (5, [105], [])
    several = insert_acks.ack_message([_Stored(3, [7, 8], None, 0, 2), _Stored(4, [9], None, 0, 2)])  # type: ignore[arg-type]
    assert (several.sequence_id, list(several.keys), list(several.keys_per_request)) == (4, [7, 8, 9], [2, 1])


# ---------------------------------------------------------------------------- the client's side
def pending(n: int) -> list[_Pending]:
    out = []
    for _ in range(n):
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        out.append(_Pending(b"", future))
    return out


def test_client_gives_each_request_its_keys():
    acked = pending(3)
    _resolve(acked, replay_pb2.InsertResponse(sequence_id=9, keys=[1, 2, 3, 4, 5], keys_per_request=[2, 0, 3]), "t")
    assert [p.future.result(0) for p in acked] == [[1, 2], [], [3, 4, 5]]
    single = pending(1)
    _resolve(single, replay_pb2.InsertResponse(sequence_id=1, keys=[6, 7]), "t")  # one request: all keys
    assert single[0].future.result(0) == [6, 7]


@pytest.mark.parametrize("sizes, keys", [([1, 1], [1, 2]), ([1, 1, 1], [1, 2]), ([], [1, 2, 3])])
def test_client_refuses_an_ack_that_does_not_match_what_is_pending(sizes, keys):
    acked = pending(3)
    _resolve(acked, replay_pb2.InsertResponse(sequence_id=3, keys=keys, keys_per_request=sizes), "t")
    for p in acked:
        with pytest.raises(UnavailableError, match="protocol mismatch"):
            p.future.result(0)


def test_ack_every_is_half_the_requests_in_flight_at_most_a_quarter_of_the_window():
    assert [ack_every_for(8, n) for n in (1, 2, 3, 4, 8)] == [1, 1, 1, 2, 2]
    assert [ack_every_for(w, 1024) for w in (1, 3, 4, 8, 1024)] == [1, 1, 1, 2, 256]


class NeverAcks:
    """An Insert call that takes requests and answers none until cancelled."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def __call__(self, requests):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        self.cancelled.wait()
        raise StopIteration

    def cancel(self) -> None:
        self.cancelled.set()


def test_the_window_counts_bytes_too():
    stream = insert_stream.InsertStream(NeverAcks(), "t", max_in_flight=100, max_in_flight_bytes=1000)
    seen = []

    def encode(seq: int, ack_every: int) -> bytes:
        seen.append(ack_every)
        return b"x" * 400

    try:
        stream.submit(encode, nbytes=400)
        stream.submit(encode, nbytes=400)
        with pytest.raises(RateLimitTimeout, match="unacknowledged"):
            stream.submit(encode, timeout=0.2, nbytes=400)  # 1200 > 1000 bytes
        assert stream.in_flight() == 2
        assert seen == [1, 1]  # a window of 1000 // 400 = 2 requests: each acked on its own
    finally:
        stream.close(timeout=0)
    alone = insert_stream.InsertStream(NeverAcks(), "t", max_in_flight=100, max_in_flight_bytes=1000)
    try:
        alone.submit(lambda seq, ack_every: b"y" * 5000, timeout=0.2, nbytes=5000)  # over the budget, but alone
        assert alone.in_flight() == 1
    finally:
        alone.close(timeout=0)


# ---------------------------------------------------------------------------- over gRPC
def raw_request(seq: int, ack_every: int) -> replay_pb2.InsertRequest:
    request = replay_pb2.InsertRequest(table="scratch", sequence_id=seq, num_items=1, ack_every=ack_every)
    encode_map({"id": np.full((3, 1), seq, np.int64), "observation": np.zeros((3, 1, 4), np.float32)},
               out=request.items)
    return request


def test_a_burst_is_acknowledged_cumulatively_and_every_request_once(stub):
    n = 64
    responses = list(stub.Insert(iter([raw_request(seq, ack_every=4) for seq in range(1, n + 1)]), timeout=30))
    assert len(responses) < n  # fewer messages than requests
    sizes = [list(r.keys_per_request) or [len(r.keys)] for r in responses]
    assert sum(len(s) for s in sizes) == n and all(size == 1 for s in sizes for size in s)
    keys = [k for r in responses for k in r.keys]
    assert keys == sorted(keys) and len(set(keys)) == n
    covered = 0
    for r, s in zip(responses, sizes):  # sequence_id: the last request each message covers
        covered += len(s)
        assert r.sequence_id == covered


def test_client_sends_ack_every_by_its_window_and_one_for_blocking_inserts(replay_server):
    sent: list[replay_pb2.InsertRequest] = []
    with ReplayClient(replay_server.address, max_in_flight=8) as client:
        table = client.table("scratch")
        original = table._encoder

        def spy(*args, **kwargs):
            encode, nbytes = original(*args, **kwargs)

            def recording(seq: int, ack_every: int) -> bytes:
                message = encode(seq, ack_every)
                sent.append(decode_insert(message))
                return message
            return recording, nbytes

        table._encoder = spy  # type: ignore[method-assign]
        item = {"id": np.zeros((3, 1), np.int64), "observation": np.zeros((3, 1, 4), np.float32)}
        futures = [table.insert_async(item) for _ in range(40)]
        keys = [f.result(timeout=10) for f in futures]
        assert table.insert(item)  # blocking: acknowledged at once
    asked = [r.ack_every for r in sent]
    assert set(asked[:40]) <= {1, 2} and 2 in asked  # half those in flight, a quarter of 8 at most
    assert asked[40] == 1
    flat = [k for ks in keys for k in ks]
    assert len(set(flat)) == 40 and flat == sorted(flat)


# ---------------------------------------------------------------------------- packed requests
def drain(stream: insert_stream.InsertStream, requests: list[bytes]) -> list[bytes]:
    import queue

    q: queue.SimpleQueue = queue.SimpleQueue()
    for r in requests:
        q.put(r)
    q.put(insert_stream._END)
    return list(stream._messages(q))


def test_queued_requests_are_packed_a_quarter_of_the_window_at_a_time():
    stream = insert_stream.InsertStream(NeverAcks(), "t", max_in_flight=16)
    requests = [raw_request(seq, 1).SerializeToString() for seq in range(1, 11)]
    assert drain(stream, requests) == requests  # the server has not said it unpacks: one message each
    stream.pack_bytes = insert_stream.PACK_BYTES
    messages = drain(stream, requests)
    assert len(messages) == 3  # 4 + 4 + 2 (a quarter of 16 per message)
    unpacked = [list(replay_pb2.InsertRequest.FromString(m).packed) for m in messages]
    assert unpacked == [requests[0:4], requests[4:8], requests[8:10]]
    assert [len(insert_acks.unpacked(m)) for m in messages] == [4, 4, 2]
    assert [p for m in messages for p in insert_acks.unpacked(m)] == requests


def test_packing_respects_the_byte_limit_and_sends_a_big_request_alone():
    stream = insert_stream.InsertStream(NeverAcks(), "t", max_in_flight=64)
    stream.pack_bytes = 1000
    small, big = b"\x0a\x01t" + b"s" * 297, b"\x0a\x01t" + b"b" * 1997  # 300 and 2000 bytes
    messages = drain(stream, [small, small, small, small, big, small])
    assert [len(insert_acks.unpacked(m)) for m in messages] == [3, 1, 1, 1]
    assert messages[2] == big and messages[1] == small and messages[3] == small


class TooLarge(Exception):
    def code(self):
        import grpc

        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self):
        return "Received message larger than max (2000000 vs. 1048576)"


def test_a_packed_message_too_big_for_the_server_turns_packing_off_and_fails_nobody():
    # (Had no pack been sent, the oldest request would be the culprit, as before packing.)
    stream = insert_stream.InsertStream(NeverAcks(), "t", max_in_flight=64)
    stream.pack_bytes = insert_stream.PACK_BYTES
    try:
        futures = [stream.submit(lambda seq, ack_every: b"x" * 600_000, nbytes=600_000) for _ in range(2)]
        for _ in range(500):  # until the stream thread has opened the call (opening resets what it sent)
            if stream._call is not None:
                break
            threading.Event().wait(0.01)
        stream._sent_packed = True  # as if both had gone out in one message
        stream._fail_culprits(TooLarge())  # type: ignore[arg-type]
        assert stream.pack_bytes == 0 and not stream._packing_allowed
        assert stream.in_flight() == 2 and not any(f.done() for f in futures)  # re-sent one per message
        stream._sent_packed = False  # the stream reopened: nothing packed on it any more
        stream._fail_culprits(TooLarge())  # type: ignore[arg-type]
        assert futures[0].exception(0) is not None and not futures[1].done()  # the oldest, as before packing
    finally:
        stream.close(timeout=0)


def test_the_server_unpacks_and_acknowledges_each_packed_request(stub):
    requests = [raw_request(seq, 1).SerializeToString() for seq in range(1, 6)]
    packed = replay_pb2.InsertRequest(packed=requests)
    responses = list(stub.Insert(iter([packed]), timeout=30))
    assert sum(len(r.keys_per_request) or 1 for r in responses) == 5
    assert responses[-1].sequence_id == 5 and len({k for r in responses for k in r.keys}) == 5


@pytest.mark.parametrize("message", [
    replay_pb2.InsertRequest(packed=[raw_request(1, 1).SerializeToString()], table="scratch"),  # not alone
    replay_pb2.InsertRequest(packed=[replay_pb2.InsertRequest(packed=[raw_request(1, 1).SerializeToString()])
                                     .SerializeToString()]),  # nested
    replay_pb2.InsertRequest(packed=[b"\xff\xff"]),  # garbage inside
], ids=["with other fields", "nested", "garbage"])
def test_bad_packing_is_invalid_argument_and_the_server_serves_on(stub, message):
    import grpc

    with pytest.raises(grpc.RpcError) as e:
        list(stub.Insert(iter([message]), timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "packed" in e.value.details() or "InsertRequest" in e.value.details()
    assert len(list(stub.Insert(iter([raw_request(7, 1)]), timeout=30))) == 1

"""The Kafka adapter's bookkeeping without a broker: which offset may be committed, the delivery
counts carried in the commit metadata, the dead-letter headers and the confirmations of
pipelined results that acked jobs wait for."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from adapters.kafka.dead_letters import REASON_HEADER, dead_letter_headers
from adapters.kafka.health import Health
from adapters.kafka.offsets import METADATA_MAX, METADATA_PREFIX, PartitionBook, decode_counts, encode_counts
from adapters.kafka.producer import ResultConfirmations

TP = TopicPartition("p2p.requests", 3)


def book_with(*offsets: int) -> PartitionBook:
    book = PartitionBook(TP)
    for offset in offsets:
        assert book.admit(offset, b"k", b"v", []) is not None
    return book


def test_nothing_to_commit_before_a_message_is_taken():
    assert PartitionBook(TP).commit_target() is None


def test_the_commit_point_stops_at_the_first_unfinished_message():
    book = book_with(10, 11, 12, 13)
    records = book.outstanding
    book.finish(records[10])
    book.finish(records[12])  # finished, but 11 before it is not
    assert book.commit_target() == (11, "")  # never delivered: no counts
    book.finish(records[11])
    assert book.commit_target() == (13, "")
    book.finish(records[13])
    assert book.commit_target() == (14, "")  # all finished: past the last message seen


def test_the_unfinished_messages_delivery_counts_ride_on_the_commit_relative_to_its_point():
    book = book_with(20, 21, 22, 23)
    book.outstanding[20].attempts = 0  # read, not handed out yet: left out
    book.outstanding[21].attempts = 2
    book.outstanding[23].attempts = 1
    book.finish(book.outstanding[22])
    assert book.commit_target() == (20, f"{METADATA_PREFIX}1=2,3=1")


def test_counts_round_trip_through_the_metadata_to_the_next_owner():
    meta = encode_counts(100, {100: 3, 102: 1, 105: 0})
    assert decode_counts(100, meta) == {100: 3, 102: 1}
    successor = PartitionBook(TP)
    successor.load_commit(100, meta)
    assert successor.last_commit == (100, meta)
    first = successor.admit(100, None, b"job", [])
    second = successor.admit(101, None, b"job", [])
    third = successor.admit(102, None, b"job", [])
    assert first is not None and second is not None and third is not None
    assert (first.attempts, second.attempts, third.attempts) == (3, 0, 1)
    assert successor.prior_attempts == {}  # each count is taken once


def test_metadata_too_long_for_the_broker_keeps_the_counts_nearest_the_commit_point():
    counts = {1000 + i: 7 for i in range(2000)}
    meta = encode_counts(1000, counts)
    assert len(meta) <= METADATA_MAX
    kept = decode_counts(1000, meta)
    assert 0 < len(kept) < len(counts)
    assert sorted(kept) == list(range(1000, 1000 + len(kept)))  # a prefix: the nearest ones


def test_metadata_not_ours_or_broken_is_ignored():
    assert decode_counts(5, "") == {}
    assert decode_counts(5, None) == {}
    assert decode_counts(5, "someone else's note") == {}
    assert decode_counts(-1, f"{METADATA_PREFIX}0=2") == {}  # no committed offset: nothing to anchor
    assert decode_counts(5, f"{METADATA_PREFIX}0=2,x=1,2=,=3,4=9") == {5: 2, 9: 9}


def test_a_message_taken_twice_is_refused_the_second_time():
    book = book_with(7)
    assert book.admit(7, None, b"again", []) is None
    assert book.admit(6, None, b"older", []) is None
    assert sorted(book.outstanding) == [7]


def test_a_commit_is_pending_only_when_it_moves_and_the_partition_is_still_ours():
    book = book_with(0, 1)
    assert book.pending_commit() == (0, "")
    book.last_commit = (0, "")
    assert book.pending_commit() is None  # committed already
    book.finish(book.outstanding[0])
    assert book.pending_commit() == (1, "")
    book.alive = False  # revoked: the new owner commits
    assert book.pending_commit() is None


def test_dead_letter_headers_name_the_reason_and_the_source_and_keep_the_message_headers():
    book = PartitionBook(TP)
    record = book.admit(42, b"key", b"raw", [("traceparent", b"00-abc"), ("p2p-reason", b"old")])
    assert record is not None
    record.attempts = 1
    headers = dead_letter_headers(record, "invalid job", "p2p-workers")
    assert headers == [
        (REASON_HEADER, b"invalid job"),
        ("p2p-source-topic", b"p2p.requests"),
        ("p2p-source-partition", b"3"),
        ("p2p-source-offset", b"42"),
        ("p2p-group", b"p2p-workers"),
        ("p2p-attempts", b"1"),
        ("traceparent", b"00-abc"),  # an earlier reason of ours is replaced, not repeated
    ]


async def test_a_confirmed_result_is_forgotten_and_a_failed_one_stays_for_the_jobs_ack():
    health = Health()
    health.up()
    confirmations = ResultConfirmations(health)
    loop = asyncio.get_running_loop()
    ok, lost = loop.create_future(), loop.create_future()
    confirmations.track("job-ok", ok)
    confirmations.track("job-lost", lost)
    assert set(confirmations.pending()) == {ok, lost}
    ok.set_result(None)
    lost.set_exception(ConnectionError("broker gone"))
    await asyncio.sleep(0)  # the done callbacks
    assert confirmations.take("job-ok") is None  # confirmed: the ack finishes the job at once
    assert confirmations.take("job-lost") is lost  # failed: the ack sees it and the job comes again
    assert confirmations.take("job-lost") is None
    assert not health.is_ready()  # a failed send says the broker is unreachable
    assert confirmations.pending() == []

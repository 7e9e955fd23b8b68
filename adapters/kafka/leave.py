"""Leaving a consumer group as a static member (KIP-345), which aiokafka does not do.

aiokafka sends LeaveGroup only for dynamic members (v0/v1 carry no group instance id), so a
worker with a ``WORKER_ID`` that stops cleanly leaves its partitions waiting for its session
timeout: every other worker pauses that long on each rolling restart or scale-down. LeaveGroup
v3 names the member by its group instance id, and the coordinator hands its partitions over at
once. Used on a clean stop only; a killed process still waits out the session timeout.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String

log = logging.getLogger(__name__)


class _LeaveGroupResponseV3(Response):
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "members",
            Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")), ("error_code", Int16)),
        ),
    )


class _LeaveGroupRequestV3(RequestStruct):
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = _LeaveGroupResponseV3
    SCHEMA = Schema(
        ("group", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class StaticLeaveGroup(Request[_LeaveGroupRequestV3]):
    API_KEY = 13

    def __init__(self, group: str, member_id: str, group_instance_id: str) -> None:
        self.group = group
        self.member_id = member_id
        self.group_instance_id = group_instance_id

    def build(self, request_struct_class: type[_LeaveGroupRequestV3]) -> _LeaveGroupRequestV3:
        return request_struct_class(self.group, [(self.member_id, self.group_instance_id)])


async def leave_as_static_member(consumer: Any, group: str, group_instance_id: str) -> bool:
    """Send LeaveGroup v3 for this static member; True when the coordinator accepted it. Best
    effort: any failure leaves the session timeout to do it."""
    coordinator = getattr(consumer, "_coordinator", None)
    member_id = getattr(coordinator, "member_id", None)
    if coordinator is None or not member_id or getattr(coordinator, "generation", 0) <= 0:
        return False
    try:
        response = await coordinator._send_req(StaticLeaveGroup(group, member_id, group_instance_id))
    except Exception as exc:
        log.info("leaving %s as static member %s failed: %s", group, group_instance_id, type(exc).__name__)
        return False
    codes = [response.error_code, *(m[2] for m in getattr(response, "members", []))]
    if any(codes):
        log.info("leaving %s as static member %s refused: error %s", group, group_instance_id, codes)
        return False
    log.info("left %s as static member %s", group, group_instance_id)
    return True

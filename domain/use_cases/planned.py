"""A job the worker took, planned: the profile and size the quality policy chose for it."""

from __future__ import annotations

from dataclasses import dataclass

from domain.models import Job
from domain.ports import Delivery
from domain.quality import QualityProfile


@dataclass
class PlannedJob:
    delivery: Delivery[Job]
    profile: QualityProfile
    reason: str  # why the policy chose the profile (for the metrics and the result)
    size: tuple[int, int]

    @property
    def job(self) -> Job:
        return self.delivery.message

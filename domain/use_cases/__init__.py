"""The use cases: what the bot and the worker do, on ports only (no framework here)."""

from domain.use_cases.deliver import DeliverResults
from domain.use_cases.outbox import PublishOutbox
from domain.use_cases.process import ProcessJobs
from domain.use_cases.submit import SubmitPrompt

__all__ = ["DeliverResults", "ProcessJobs", "PublishOutbox", "SubmitPrompt"]

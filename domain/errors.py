"""Typed errors of the domain. Each carries a stable ``code`` and parameters, so that every front
(Telegram, HTTP) can say what went wrong in the user's own language."""

from __future__ import annotations


class DomainError(Exception):
    code = "error"

    def __init__(self, **params: object) -> None:
        self.params = params
        super().__init__(f"{self.code}: {params}" if params else self.code)


class InvalidRequest(DomainError):
    """The user's request cannot be accepted as it is; nothing was queued."""

    code = "invalid_request"


class EmptyPrompt(InvalidRequest):
    code = "empty_prompt"


class PromptTooLong(InvalidRequest):
    code = "prompt_too_long"  # params: length, limit


class PromptControlCharacters(InvalidRequest):
    code = "prompt_control_characters"


class PromptNoContent(InvalidRequest):
    """Only emoji, punctuation or symbols: nothing the model can draw from."""

    code = "prompt_no_content"


class UnsupportedSize(InvalidRequest):
    code = "unsupported_size"  # params: width, height, min_side, max_side, multiple


class InvalidSeed(InvalidRequest):
    code = "invalid_seed"  # params: value, max


class UnknownParameter(InvalidRequest):
    code = "unknown_parameter"  # params: name, valid


class MissingParameterValue(InvalidRequest):
    code = "missing_parameter_value"  # params: name, example


class InvalidAspectRatio(InvalidRequest):
    code = "invalid_aspect_ratio"  # params: value, low, high, examples


class InvalidQuality(InvalidRequest):
    code = "invalid_quality"  # params: value, valid


class PromptRefused(InvalidRequest):
    """The prompt matches the operator's word lists (``domain.safety``). Its parameters carry
    the list's category only, never the matched word: the user is told that the request is not
    allowed, not what tripped the filter."""

    code = "prompt_refused"  # params: category


class LimitExceeded(DomainError):
    """The user asked for more than the limits allow right now; nothing was queued."""

    code = "limit_exceeded"


class TooManyJobsInFlight(LimitExceeded):
    code = "too_many_in_flight"  # params: limit, in_flight, requested


class RateLimited(LimitExceeded):
    code = "rate_limited"  # params: limit, retry_after (whole seconds)


class AlreadyAccepted(DomainError):
    """Every job asked for is known already: the same message came twice (Telegram hands a
    restarted bot the updates it had not confirmed). Nothing new is queued; nothing to say."""

    code = "already_accepted"


class QueueUnavailable(DomainError):
    """The job could not be handed to the queue; the user is told to try again."""

    code = "queue_unavailable"


class StorageError(DomainError):
    code = "storage_error"


class GenerationError(DomainError):
    code = "generation_error"


class ModelNotFound(GenerationError):
    """The model weights are neither in the local folder nor reachable on the hub."""

    code = "model_not_found"


class RecipientGone(DomainError):
    """The user cannot be reached any more (blocked the bot, left the chat): do not retry."""

    code = "recipient_gone"


class UndecodableMessage(DomainError):
    """A message off the queue of an unknown version or type, or one that fails validation: its
    consumer sets it aside (dead letters) and goes on."""

    code = "undecodable_message"

    def __init__(self, reason: str) -> None:
        super().__init__(reason=reason)
        self.reason = reason


class RefundRefused(DomainError):
    """The payment platform refused a refund (``reason``: ``already_refunded``, ``unknown_charge``,
    or its own words); nothing was given back by it."""

    code = "refund_refused"  # params: charge_id, reason

"""Credits bought with Telegram Stars: the operator's packs, a payment as the store keeps it, and
the ledger of every move (a purchase, a credit spent on a job, given back when the job ends
without a picture, taken back by a refund).

A credit is spent on one job: a full-quality picture in the priority lane. Pure rules and values
here; ``domain.ports.CreditStore`` keeps balances, payments and the ledger (in one transaction
per move), ``domain.use_cases.credits`` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Telegram Stars' currency code (Bot API: "XTR" for payments in Telegram Stars).
STARS_CURRENCY = "XTR"
# An invoice payload is 1-128 bytes (Bot API sendInvoice).
PAYLOAD_PREFIX = "credits"


class LedgerKind(StrEnum):
    PURCHASE = "purchase"  # credits granted by a Stars payment
    SPEND = "spend"  # one credit spent on one job
    GIVE_BACK = "give_back"  # a paid job ended without a picture: its credit came back
    REFUND = "refund"  # an admin refunded the Stars: the credits not yet spent taken back
    # A refund found too few credits left: a job in flight paid from the refunded pack keeps its
    # credit for good (0 credits moved; its picture still comes, a failure gives nothing back).
    KEPT = "kept"


@dataclass(frozen=True)
class CreditPack:
    """``credits`` credits for ``stars`` Telegram Stars."""

    credits: int
    stars: int

    @property
    def payload(self) -> str:
        """The invoice payload naming this pack (it comes back in the pre-checkout query and the
        payment, and the pack is checked against it there)."""
        return f"{PAYLOAD_PREFIX}:{self.credits}:{self.stars}"

    def __str__(self) -> str:
        return f"{self.credits}:{self.stars}"


def parse_packs(text: str) -> tuple[CreditPack, ...]:
    """The operator's packs from ``"10:50,50:200"`` (credits:stars, comma-separated); raises
    ``ValueError`` saying what is wrong. Telegram takes whole Stars from 1 up (this limit: 10000
    a pack, far above any price a picture bot asks)."""
    packs: list[CreditPack] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        credits, sep, stars = part.partition(":")
        if not sep or not credits.strip().isdigit() or not stars.strip().isdigit():
            raise ValueError(
                f"pack {part!r} is not CREDITS:STARS (two whole numbers, e.g. 10:50 for 10 credits for 50 Stars)"
            )
        pack = CreditPack(int(credits), int(stars))
        if not 1 <= pack.credits <= 10_000 or not 1 <= pack.stars <= 10_000:
            raise ValueError(f"pack {part!r}: credits and Stars must each be from 1 to 10000")
        if any(p.credits == pack.credits for p in packs):
            raise ValueError(f"pack {part!r}: two packs of {pack.credits} credits")
        packs.append(pack)
    if not packs:
        raise ValueError("no pack: give at least one CREDITS:STARS, e.g. 10:50,50:200")
    return tuple(packs)


def pack_for(packs: tuple[CreditPack, ...], payload: str) -> CreditPack | None:
    """The pack an invoice payload names, if the operator still sells it at that price."""
    return next((p for p in packs if p.payload == payload), None)


def pack_of_payload(payload: str) -> CreditPack | None:
    """The pack a payload names, whatever the operator sells now (a payment is credited as it
    was invoiced, even if the packs changed since)."""
    prefix, _, rest = payload.partition(":")
    credits, _, stars = rest.partition(":")
    if prefix != PAYLOAD_PREFIX or not credits.isdigit() or not stars.isdigit():
        return None
    return CreditPack(int(credits), int(stars))


@dataclass(frozen=True)
class StarPayment:
    """A Stars payment, as the store keeps it (idempotent by Telegram's ``charge_id``)."""

    charge_id: str
    user_id: int
    stars: int
    credits: int
    payload: str
    paid_at: float
    refunded_at: float | None = None
    credits_taken_back: int = 0


@dataclass(frozen=True)
class Refunded:
    """What a refund did in the store: the payment, the credits taken back (those not yet spent,
    at most the pack's), and whether this call did it (False: refunded before)."""

    payment: StarPayment
    taken_back: int
    first: bool


@dataclass(frozen=True)
class LedgerEntry:
    user_id: int
    kind: LedgerKind
    credits: int  # signed: + granted or given back, - spent or taken back
    at: float
    stars: int = 0  # signed: + received, - refunded
    charge_id: str | None = None
    job_id: str | None = None


class CheckoutRefusal(StrEnum):
    """Why a pre-checkout query is refused (the user reads it in their language)."""

    OFF = "off"  # payments are turned off
    UNKNOWN_PACK = "unknown_pack"  # no such pack (any more), or not at that price
    BANNED = "banned"
    NOT_ALLOWED = "not_allowed"  # not on the operator's allowlist (an invoice forwarded to them)


def check_checkout(
    packs: tuple[CreditPack, ...], *, payload: str, currency: str, total: int, banned: bool, allowed: bool = True
) -> CheckoutRefusal | None:
    """None: the pre-checkout query may be accepted."""
    if not packs:
        return CheckoutRefusal.OFF
    if banned:
        return CheckoutRefusal.BANNED
    if not allowed:
        return CheckoutRefusal.NOT_ALLOWED
    pack = pack_for(packs, payload)
    if pack is None or currency != STARS_CURRENCY or total != pack.stars:
        return CheckoutRefusal.UNKNOWN_PACK
    return None

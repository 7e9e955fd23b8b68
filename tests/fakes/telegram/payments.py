"""Telegram Stars in the fake Bot API server (tests/fakes/telegram/server.py), as strict as Telegram.

- ``sendInvoice``: the Bot API's own checks (tdlib/telegram-bot-api, telegram-bot-api/Client.cpp:
  "Parameter ... is required", "There must be at least one price", "LabeledPrice label must be
  non-empty"), then Telegram's: an invoice in ``XTR`` takes exactly one price, no provider token
  and no tips, else ``Bad Request: STARS_INVOICE_INVALID`` (MTProto's error "The specified
  Telegram Star invoice is invalid"; which of these breaches Telegram names so is not documented
  one by one: go-telegram-bot-api issue #751 got it for an XTR invoice with a provider token and
  tips); another currency without a provider token is ``Bad Request: PAYMENT_PROVIDER_INVALID``
  (rubenlagus/TelegramBots issue #1445).
- ``pay``: the user presses Pay under an invoice: a ``pre_checkout_query`` update. Telegram waits
  10 s for ``answerPreCheckoutQuery``; an answer later (or a second one, or to an unknown id) is
  ``Bad Request: query is too old and response timeout expired or query ID is invalid`` (the Bot
  API's text for QUERY_ID_INVALID, Client.cpp), and nothing is charged. An accepted one charges
  the user and sends ``successful_payment`` as a message update in the user's chat.
- ``refundStarPayment``: an already refunded charge is ``Bad Request: CHARGE_ALREADY_REFUNDED``
  (MTProto payments.refundStarsCharge; tdlib/telegram-bot-api issue #690); a charge id that is
  unknown, or not that user's, has no documented text: ``Bad Request: CHARGE_ID_INVALID`` here
  (a guess, said so in docs/payments.md); an empty one ``Parameter "telegram_payment_charge_id"
  is required``.
- ``getStarTransactions``: the bot's transactions in chronological order (offset, limit 1-100).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any, NoReturn

from tests.fakes.telegram import rules
from tests.fakes.telegram.script import ScriptedUpdates

QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
STARS_INVOICE_INVALID = "Bad Request: STARS_INVOICE_INVALID"
PAYMENT_PROVIDER_INVALID = "Bad Request: PAYMENT_PROVIDER_INVALID"
CHARGE_ALREADY_REFUNDED = "Bad Request: CHARGE_ALREADY_REFUNDED"
CHARGE_ID_INVALID = "Bad Request: CHARGE_ID_INVALID"  # not documented (see above)
PRE_CHECKOUT_TIMEOUT_S = 10.0
# What a Stars invoice may not have (tips and the provider's fields).
NOT_FOR_STARS = (
    "max_tip_amount",
    "suggested_tip_amounts",
    "need_name",
    "need_phone_number",
    "need_email",
    "need_shipping_address",
    "send_phone_number_to_provider",
    "send_email_to_provider",
    "is_flexible",
)


def _required(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise rules.BadRequest(f'Parameter "{name}" is required')
    return value


def _refuse(description: str) -> NoReturn:
    raise rules.BadRequest(description.removeprefix("Bad Request: "))


def _is_set(value: Any) -> bool:
    return value not in (None, "", 0, "0", False, "false", [], "[]")


class FakeStars(ScriptedUpdates):
    """The payments part of ``FakeBotAPI``; uses its messages, chats and update queue."""

    def _message(self, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        raise NotImplementedError  # FakeBotAPI's

    def _stars_init(self) -> None:
        self.invoices: dict[int, dict[str, Any]] = {}  # invoice message id -> invoice
        self.invoice_texts: list[tuple[str, str]] = []  # (title, description) of each invoice sent
        self.pre_checkouts: dict[str, dict[str, Any]] = {}  # query id -> query, its answer and time
        self.charges: dict[str, dict[str, Any]] = {}  # charge id -> payment (refunded: True)
        self.star_transactions: list[dict[str, Any]] = []  # chronological, as getStarTransactions
        self.stars_spent: dict[int, int] = {}  # user id -> Stars paid, less refunds
        self.pre_checkout_timeout_s = PRE_CHECKOUT_TIMEOUT_S
        # A payment message that never reaches the bot (the update lost with a killed bot).
        self.lose_payment_messages = False
        self.payment_updates: dict[str, dict[str, Any]] = {}  # charge id -> the update sent
        self._query_ids = itertools.count(1)
        self._charge_ids = itertools.count(1)

    # --- the methods ----------------------------------------------------------------------------
    async def _m_sendInvoice(self, params, files):
        title, description = str(_required(params, "title")), str(_required(params, "description"))
        payload = str(_required(params, "payload"))
        currency = str(_required(params, "currency"))
        prices = _required(params, "prices")
        if isinstance(prices, str):
            try:
                prices = json.loads(prices)
            except json.JSONDecodeError:
                raise rules.BadRequest("Can't parse prices JSON object") from None
        if not isinstance(prices, list):
            raise rules.BadRequest("Expected an Array of labeled prices")
        if not prices:
            raise rules.BadRequest("There must be at least one price")
        for price in prices:
            if not isinstance(price, dict) or not str(price.get("label") or ""):
                raise rules.BadRequest("Can't parse labeled price: LabeledPrice label must be non-empty")
        if len(payload.encode()) > 128:  # MTProto: "The specified invoice payload is invalid"
            raise rules.BadRequest("INVOICE_PAYLOAD_INVALID")
        # (A title over 32 or a description over 255 characters: Telegram's texts are not
        # documented; the bot's own test holds its titles and descriptions to those limits.)
        self.invoice_texts.append((title, description))
        provider_token = str(params.get("provider_token") or "")
        if currency == "XTR":
            if len(prices) != 1 or provider_token or any(_is_set(params.get(n)) for n in NOT_FOR_STARS):
                _refuse(STARS_INVOICE_INVALID)
        elif not provider_token:
            _refuse(PAYMENT_PROVIDER_INVALID)
        total = sum(int(p.get("amount") or 0) for p in prices)
        if total <= 0:
            raise rules.BadRequest("CURRENCY_TOTAL_AMOUNT_INVALID")
        invoice = {
            "title": title,
            "description": description,
            "start_parameter": "",
            "currency": currency,
            "total_amount": total,
        }
        message = self._message(params, invoice=invoice)
        self.invoices[message["message_id"]] = {**invoice, "payload": payload, "chat_id": int(params["chat_id"])}
        return message

    async def _m_answerPreCheckoutQuery(self, params, files):
        query = self.pre_checkouts.get(str(params.get("pre_checkout_query_id") or ""))
        ok = params.get("ok") in (True, "true", "True")
        if not ok:
            _required(params, "error_message")
        late = query is not None and time.monotonic() - query["at"] > self.pre_checkout_timeout_s
        if query is None or query["answer"] is not None or late:
            if query is not None and late:
                query["answer"] = "timed out"
            _refuse(QUERY_TOO_OLD)
        query["answer"] = "ok" if ok else str(params.get("error_message"))
        if ok:
            self._charge(query)
        return True

    async def _m_refundStarPayment(self, params, files):
        user_id = int(_required(params, "user_id"))
        charge_id = str(_required(params, "telegram_payment_charge_id"))
        charge = self.charges.get(charge_id)
        if charge is None or charge["user"]["id"] != user_id:
            _refuse(CHARGE_ID_INVALID)
        if charge["refunded"]:
            _refuse(CHARGE_ALREADY_REFUNDED)
        charge["refunded"] = True
        self.stars_spent[user_id] -= charge["amount"]
        self.star_transactions.append(
            {
                "id": charge_id,
                "amount": charge["amount"],
                "date": int(time.time()),
                "receiver": {"type": "user", "transaction_type": "invoice_payment", "user": charge["user"]},
            }
        )
        return True

    async def _m_getStarTransactions(self, params, files):
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        if not 1 <= limit <= 100:
            limit = 100
        return {"transactions": self.star_transactions[offset : offset + limit]}

    # --- what users do --------------------------------------------------------------------------
    def pay(self, user_id: int, invoice_message_id: int, *, language_code: str = "en") -> str:
        """The user presses Pay under the bot's invoice: Telegram asks the bot (pre-checkout)."""
        invoice = self.invoices[invoice_message_id]
        query_id = f"pcq{next(self._query_ids)}"
        user = {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code}
        query = {
            "id": query_id,
            "from": user,
            "currency": invoice["currency"],
            "total_amount": invoice["total_amount"],
            "invoice_payload": invoice["payload"],
        }
        self.pre_checkouts[query_id] = {"query": query, "at": time.monotonic(), "answer": None}
        self.push_update({"pre_checkout_query": query})
        return query_id

    def _charge(self, pending: dict[str, Any]) -> None:
        query = pending["query"]
        user = query["from"]
        charge_id = f"stxCHARGE{next(self._charge_ids):06d}"
        amount = int(query["total_amount"])
        self.charges[charge_id] = {
            "user": user,
            "amount": amount,
            "payload": query["invoice_payload"],
            "refunded": False,
        }
        pending["charge_id"] = charge_id
        self.stars_spent[user["id"]] = self.stars_spent.get(user["id"], 0) + amount
        self.star_transactions.append(
            {
                "id": charge_id,
                "amount": amount,
                "date": int(time.time()),
                "source": {
                    "type": "user",
                    "transaction_type": "invoice_payment",
                    "user": user,
                    "invoice_payload": query["invoice_payload"],
                },
            }
        )
        update = {
            "message": {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": self.chat(user["id"]),
                "from": user,
                "successful_payment": {
                    "currency": query["currency"],
                    "total_amount": amount,
                    "invoice_payload": query["invoice_payload"],
                    "telegram_payment_charge_id": charge_id,
                    "provider_payment_charge_id": "",
                },
            }
        }
        self.payment_updates[charge_id] = update
        if not self.lose_payment_messages:
            self.push_update(update)

    def hand_over_again(self, charge_id: str) -> int:
        """The payment's message update delivered once more (a webhook retried, a bot that had
        not confirmed it): the same message under a new update id."""
        return self.push_update(json.loads(json.dumps(self.payment_updates[charge_id])))

    def charge_of(self, query_id: str) -> str | None:
        return self.pre_checkouts[query_id].get("charge_id")

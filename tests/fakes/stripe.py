"""A small fake of the Stripe API for the endpoints Levqor uses: Connect (accounts, account_links,
transfers) and Billing (prices by lookup key, customers, Checkout Sessions, Customer Portal sessions,
subscriptions with proration, invoices, charges and refunds), with idempotency keys handled like
Stripe: the same key and parameters return the first response; the same key with other parameters
is an error.

Billing state changes (a customer paying at Checkout, a renewal, a failed payment, a refund) are
driven by test helpers and produce Stripe events in ``events``; :meth:`FakeStripe.deliver` signs
them like Stripe and posts them to a webhook endpoint."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``metadata[a]=1&capabilities[transfers][requested]=true`` -> nested dicts."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
    return out


class FakeStripe:
    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.transfers: list[dict[str, Any]] = []
        self.idempotent: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.billing = FakeBilling(self)
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", "req_" + secrets.token_hex(6))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                if path == "/v1/transfers":
                    with fake.lock:
                        self._send(200, {"object": "list", "data": list(reversed(fake.transfers)), "has_more": False,
                                         "url": "/v1/transfers"})
                    return
                if path == "/v1/prices":
                    keys = [v for k, v in parse_qsl(urlsplit(self.path).query) if k.startswith("lookup_keys")]
                    with fake.lock:
                        data = [p for p in fake.prices.values() if p["lookup_key"] in keys and p["active"]]
                    self._send(200, {"object": "list", "data": data, "has_more": False, "url": "/v1/prices"})
                    return
                if path.startswith("/v1/subscriptions/"):
                    with fake.lock:
                        sub = fake.subscriptions.get(path.rsplit("/", 1)[1])
                    if sub:
                        self._send(200, sub)
                        return
                if path.startswith("/v1/accounts/"):
                    acct = fake.accounts.get(path.rsplit("/", 1)[1])
                    if acct:
                        self._send(200, acct)
                        return
                self._send(404, {"error": {"type": "invalid_request_error", "message": "No such object"}})

            def do_DELETE(self) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                with fake.lock:
                    fake.requests.append((path, "DELETE", None))
                    code, body = fake.cancel(path.rsplit("/", 1)[1]) if path.startswith("/v1/subscriptions/") \
                        else (404, {"error": {"type": "invalid_request_error", "message": "Unrecognized URL"}})
                self._send(code, body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                params = _nest(parse_qsl(raw, keep_blank_values=True))
                path = urlsplit(self.path).path
                key = self.headers.get("idempotency-key")
                auth = self.headers.get("authorization", "")
                with fake.lock:
                    fake.requests.append((path, raw, key))
                    if not auth.startswith("Bearer sk_test_"):
                        self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
                        return
                    if key and key in fake.idempotent:
                        first_raw, code, body = fake.idempotent[key]
                        if first_raw != raw:
                            self._send(400, {"error": {"type": "idempotency_error", "message":
                                                       "Keys for idempotent requests can only be used with the "
                                                       "same parameters they were first used with."}})
                        else:
                            self._send(code, body)
                        return
                    code, body = fake.handle(path, params)
                    if key:
                        fake.idempotent[key] = (raw, code, body)
                self._send(code, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, path: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = int(time.time())
        if path == "/v1/accounts":
            acct = {"id": "acct_" + secrets.token_hex(8), "object": "account", "type": p.get("type", "express"),
                    "email": p.get("email"), "metadata": p.get("metadata", {}), "charges_enabled": False,
                    "payouts_enabled": False, "details_submitted": False, "created": now}
            self.accounts[acct["id"]] = acct
            return 200, acct
        if path == "/v1/account_links":
            if p.get("account") not in self.accounts:
                return 400, {"error": {"type": "invalid_request_error", "message": "No such account",
                                       "param": "account"}}
            return 200, {"object": "account_link", "created": now, "expires_at": now + 300,
                         "url": f"https://connect.stripe.test/setup/e/{p['account']}/{secrets.token_hex(6)}"}
        if path == "/v1/transfers":
            if p.get("destination") not in self.accounts:
                return 400, {"error": {"type": "invalid_request_error", "message": "No such destination",
                                       "param": "destination"}}
            tr = {"id": "tr_" + secrets.token_hex(8), "object": "transfer", "amount": int(p["amount"]),
                  "currency": p["currency"], "destination": p["destination"],
                  "transfer_group": p.get("transfer_group"), "metadata": p.get("metadata", {}),
                  "reversed": False, "created": now}
            self.transfers.append(tr)
            return 200, tr
        return self.billing.handle(path, p)

    @property
    def prices(self) -> dict[str, dict[str, Any]]:
        return self.billing.prices

    @property
    def subscriptions(self) -> dict[str, dict[str, Any]]:
        return self.billing.subscriptions

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.billing.events

    def cancel(self, sub_id: str) -> tuple[int, dict[str, Any]]:
        return self.billing.cancel(sub_id)

    def deliver(self, client: Any, events: list[dict[str, Any]] | None = None, *, secret: str = "whsec_stripe_test",
                path: str = "/v1/stripe/webhook") -> list[Any]:
        """Sign ``events`` (default: every event not yet delivered) like Stripe and post them; the responses."""
        if events is None:
            events = self.events[self.billing.delivered:]
            self.billing.delivered = len(self.events)
        return [post_event(client, ev, secret=secret, path=path) for ev in events]

    def __enter__(self) -> FakeStripe:
        self.thread.start()
        return self

    def __exit__(self, *_a: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``, computed with the SDK's own function."""
    import stripe

    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={stripe.WebhookSignature._compute_signature(f'{ts}.{payload}', secret)}"


def post_event(client: Any, event: dict[str, Any], *, secret: str = "whsec_stripe_test",
               path: str = "/v1/stripe/webhook", timestamp: int | None = None) -> Any:
    """Post one Stripe event, signed, to ``path`` with a TestClient-like ``client``."""
    payload = json.dumps(event)
    return client.post(path, content=payload, headers={"Stripe-Signature": sign(payload, secret, timestamp),
                                                       "content-type": "application/json"})


def _err(message: str, param: str | None = None, code: int = 400) -> tuple[int, dict[str, Any]]:
    return code, {"error": {"type": "invalid_request_error", "message": message, "param": param}}


class FakeBilling:
    """Stripe Billing objects: prices, customers, Checkout, the portal, subscriptions, invoices, refunds.

    The clock (``now``) is the fake's own, so a test can move through billing periods; every event gets
    a strictly increasing ``created``. Prorations follow Stripe's arithmetic: the unused fraction of the
    period is credited at the old price and charged at the new one, on one invoice paid at once
    (``proration_behavior=always_invoice``)."""

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake
        self.now = int(time.time())
        self.prices: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.delivered = 0
        self._created = 0
        self.fail_payments = False  # the card is declined from now on

    # ---- HTTP ----
    def handle(self, path: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/v1/prices":
            return self._create_price(p)
        if path == "/v1/customers":
            cus = {"id": "cus_" + secrets.token_hex(8), "object": "customer", "email": p.get("email"),
                   "name": p.get("name"), "metadata": p.get("metadata", {}), "created": self.now}
            self.customers[cus["id"]] = cus
            return 200, cus
        if path == "/v1/checkout/sessions":
            return self._create_session(p)
        if path == "/v1/billing_portal/sessions":
            if p.get("customer") not in self.customers:
                return _err("No such customer", "customer")
            return 200, {"id": "bps_" + secrets.token_hex(8), "object": "billing_portal.session",
                         "customer": p["customer"], "return_url": p.get("return_url"),
                         "url": f"https://billing.stripe.test/p/session/{secrets.token_hex(8)}"}
        if path.startswith("/v1/subscriptions/"):
            return self._update_subscription(path.rsplit("/", 1)[1], p)
        return _err(f"Unrecognized request URL {path}", code=404)

    def _create_price(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = p.get("lookup_key")
        if key and any(x["lookup_key"] == key and x["active"] for x in self.prices.values()):
            return _err("A price with this lookup_key already exists", "lookup_key")
        rec = p.get("recurring")
        price = {"id": "price_" + secrets.token_hex(8), "object": "price", "lookup_key": key, "active": True,
                 "unit_amount": int(p["unit_amount"]), "currency": p.get("currency", "usd"),
                 "type": "recurring" if rec else "one_time",
                 "recurring": {"interval": rec["interval"], "interval_count": 1} if rec else None,
                 "product": "prod_" + secrets.token_hex(6), "metadata": p.get("metadata", {})}
        self.prices[price["id"]] = price
        return 200, price

    def _create_session(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if p.get("customer") not in self.customers:
            return _err("No such customer", "customer")
        items = list((p.get("line_items") or {}).values())
        if not items or any(i.get("price") not in self.prices for i in items):
            return _err("No such price", "line_items")
        mode = p.get("mode")
        if mode not in ("subscription", "payment"):
            return _err("mode must be subscription or payment", "mode")
        total = sum(self.prices[i["price"]]["unit_amount"] * int(i.get("quantity") or 1) for i in items)
        cs = {"id": "cs_test_" + secrets.token_hex(12), "object": "checkout.session", "mode": mode,
              "customer": p["customer"], "status": "open", "payment_status": "unpaid", "amount_total": total,
              "currency": "usd", "metadata": p.get("metadata", {}), "success_url": p.get("success_url"),
              "cancel_url": p.get("cancel_url"), "client_reference_id": p.get("client_reference_id"),
              "subscription": None, "payment_intent": None,
              "url": f"https://checkout.stripe.test/c/pay/{secrets.token_hex(10)}",
              "_items": [{"price": i["price"], "quantity": int(i.get("quantity") or 1)} for i in items],
              "_sub_metadata": (p.get("subscription_data") or {}).get("metadata", {})}
        self.sessions[cs["id"]] = cs
        return 200, self._public(cs)

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # ---- events ----
    def _event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._created = max(self._created + 1, self.now)
        ev = {"id": "evt_" + secrets.token_hex(12), "object": "event", "type": type_, "api_version": "2025-01-01",
              "created": self._created, "livemode": False, "data": {"object": json.loads(json.dumps(obj))}}
        self.events.append(ev)
        return ev

    def _sub_object(self, sub: dict[str, Any]) -> dict[str, Any]:
        return self._public(sub)

    def _line(self, price_id: str, qty: int, amount: int, start: int, end: int, proration: bool) -> dict[str, Any]:
        price = self.prices[price_id]
        return {"id": "il_" + secrets.token_hex(8), "object": "line_item", "amount": amount, "quantity": qty,
                "proration": proration, "period": {"start": start, "end": end},
                "price": {k: price[k] for k in ("id", "lookup_key", "unit_amount", "currency", "recurring")}}

    def _charge(self, customer: str, amount: int, *, paid: bool) -> dict[str, Any]:
        ch = {"id": "ch_" + secrets.token_hex(10), "object": "charge", "customer": customer, "amount": amount,
              "amount_refunded": 0, "currency": "usd", "paid": paid, "status": "succeeded" if paid else "failed",
              "refunded": False, "refunds": {"object": "list", "data": []}, "created": self.now}
        self.charges[ch["id"]] = ch
        return ch

    def _invoice(self, sub: dict[str, Any], lines: list[dict[str, Any]], reason: str) -> dict[str, Any]:
        amount = sum(ln["amount"] for ln in lines)
        paid = amount <= 0 or not self.fail_payments
        charge = self._charge(sub["customer"], max(amount, 0), paid=paid) if amount > 0 else None
        inv = {"id": "in_" + secrets.token_hex(10), "object": "invoice", "customer": sub["customer"],
               "subscription": sub["id"], "billing_reason": reason, "currency": "usd", "amount_due": max(amount, 0),
               "amount_paid": max(amount, 0) if paid else 0, "status": "paid" if paid else "open",
               "charge": charge["id"] if charge else None, "created": self.now,
               "parent": {"type": "subscription_details",
                          "subscription_details": {"subscription": sub["id"], "metadata": sub["metadata"]}},
               "lines": {"object": "list", "data": lines, "has_more": False}}
        self.invoices[inv["id"]] = inv
        self._event("invoice.paid" if paid else "invoice.payment_failed", inv)
        if not paid and sub["status"] == "active":
            sub["status"] = "past_due"
            self._event("customer.subscription.updated", self._sub_object(sub))
        return inv

    # ---- what customers and time do (test helpers) ----
    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """The customer pays at Checkout: a subscription and its first invoice, or a one-off payment."""
        with self.fake.lock:
            cs = self.sessions[session_id]
            cs["status"], cs["payment_status"] = "complete", "paid"
            if cs["mode"] == "subscription":
                item = cs["_items"][0]
                interval = self.prices[item["price"]]["recurring"]["interval"]
                start, end = self.now, self.now + (365 if interval == "year" else 30) * 86400
                sub = {"id": "sub_" + secrets.token_hex(10), "object": "subscription", "customer": cs["customer"],
                       "status": "active", "metadata": cs["_sub_metadata"], "current_period_start": start,
                       "current_period_end": end, "cancel_at_period_end": False,
                       "items": {"object": "list", "data": [
                           {"id": "si_" + secrets.token_hex(8), "object": "subscription_item",
                            "price": dict(self.prices[item["price"]]), "quantity": item["quantity"]}]}}
                self.subscriptions[sub["id"]] = sub
                cs["subscription"] = sub["id"]
                self._event("checkout.session.completed", self._public(cs))
                self._event("customer.subscription.created", self._sub_object(sub))
                unit = self.prices[item["price"]]["unit_amount"]
                self._invoice(sub, [self._line(item["price"], item["quantity"], unit * item["quantity"], start, end,
                                               False)], "subscription_create")
            else:
                charge = self._charge(cs["customer"], cs["amount_total"], paid=True)
                cs["payment_intent"] = "pi_" + secrets.token_hex(10)
                charge["payment_intent"] = cs["payment_intent"]
                self._event("checkout.session.completed", self._public(cs))
            return self._public(cs)

    def renew(self, sub_id: str) -> dict[str, Any]:
        """Move the clock to the end of the period and bill the next one (paid, or failed when
        ``fail_payments``)."""
        with self.fake.lock:
            sub = self.subscriptions[sub_id]
            self.now = start = sub["current_period_end"]
            item = sub["items"]["data"][0]
            interval = item["price"]["recurring"]["interval"]
            end = start + (365 if interval == "year" else 30) * 86400
            sub["current_period_start"], sub["current_period_end"] = start, end
            return self._invoice(sub, [self._line(item["price"]["id"], item["quantity"],
                                                  item["price"]["unit_amount"] * item["quantity"], start, end, False)],
                                 "subscription_cycle")

    def refund(self, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund (part of) a charge: ``charge.refunded`` with the charge and its refunds."""
        with self.fake.lock:
            ch = self.charges[charge_id]
            amount = ch["amount"] - ch["amount_refunded"] if amount is None else amount
            rf = {"id": "re_" + secrets.token_hex(10), "object": "refund", "amount": amount, "charge": charge_id,
                  "currency": "usd", "status": "succeeded", "created": self.now}
            ch["refunds"]["data"].insert(0, rf)
            ch["amount_refunded"] += amount
            ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
            self._event("charge.refunded", ch)
            return rf

    def _update_subscription(self, sub_id: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return _err("No such subscription", "id", 404)
        if sub["status"] == "canceled":
            return _err("This subscription is canceled", "id")
        items = list((p.get("items") or {}).values())
        if items:
            new = items[0]
            old_item = sub["items"]["data"][0]
            if new.get("id") != old_item["id"] or new.get("price", old_item["price"]["id"]) not in self.prices:
                return _err("No such subscription item or price", "items")
            old_price, old_qty = old_item["price"], int(old_item["quantity"])
            new_price = self.prices[new.get("price", old_price["id"])]
            new_qty = int(new.get("quantity") or old_qty)
            start, end = sub["current_period_start"], sub["current_period_end"]
            credit = old_price["unit_amount"] * old_qty * (end - self.now) // (end - start)
            if new_price["recurring"]["interval"] != old_price["recurring"]["interval"]:
                # Changing the interval starts a new period now (Stripe resets the billing anchor).
                start = self.now
                end = start + (365 if new_price["recurring"]["interval"] == "year" else 30) * 86400
                sub["current_period_start"], sub["current_period_end"] = start, end
            charge = new_price["unit_amount"] * new_qty * (end - self.now) // (end - start)
            old_item["price"], old_item["quantity"] = dict(new_price), new_qty
            if p.get("metadata"):
                sub["metadata"] = {**sub["metadata"], **p["metadata"]}
            lines = [self._line(old_price["id"], old_qty, -credit, self.now, end, True),
                     self._line(new_price["id"], new_qty, charge, self.now, end, True)]
            self._event("customer.subscription.updated", self._sub_object(sub))
            if p.get("proration_behavior", "create_prorations") != "none":
                self._invoice(sub, lines, "subscription_update")
        return 200, self._sub_object(sub)

    def cancel(self, sub_id: str) -> tuple[int, dict[str, Any]]:
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return _err("No such subscription", "id", 404)
        if sub["status"] != "canceled":
            sub["status"] = "canceled"
            self._event("customer.subscription.deleted", self._sub_object(sub))
        return 200, self._sub_object(sub)

"""`mailbridge status`: the health picture for an operator at a terminal, from the database
(and from the running daemon's /healthz when service.listen is set): the work, and which
running instance polls each mailbox. Exit code 0 when nothing needs attention, 1 when
something does, so scripts can alert on it."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TextIO

from sqlalchemy.engine import make_url

from mailbridge.app import App
from mailbridge.cli.common import command_config, open_app
from mailbridge.core.humanize import format_duration
from mailbridge.core.ownership import holder
from mailbridge.core.states import InboundState, OutboxState
from mailbridge.errors import describe_error
from mailbridge.inbound.leases import Ownership, ownership
from mailbridge.oauth.accounts import sign_ins
from mailbridge.oauth.endpoint import SignInRequired
from mailbridge.oauth.tokens import TokenStore
from mailbridge.service.snapshot import Snapshot, history, snapshot

__all__ = ["print_status", "configure", "status_document"]

DAEMON_TIMEOUT = 3.0


def status_document(app: App) -> dict[str, Any]:
    now = app.clock.now()
    with app.sessions() as session:
        data, so_far = snapshot(session, now), history(session)
    zone = app.config.calendar.zone

    def local(value: datetime | None) -> str | None:
        return value.astimezone(zone).isoformat(timespec="seconds") if value else None

    mailboxes = {}
    for mailbox in app.config.mailbox:
        kinds = {kind: n for (name, kind), n in so_far.ingested.items() if name == mailbox.name}
        mailboxes[mailbox.name] = {
            "last_received_at": local(so_far.last_received.get(mailbox.name)),
            "ingested": sum(kinds.values()),
            "by_kind": kinds,
        }
    document: dict[str, Any] = {
        "at": local(now),
        "database": make_url(app.config.database_url).render_as_string(hide_password=True),
        "mailboxes": mailboxes,
        "inbound": {
            "waiting": data.inbound_by_state.get(InboundState.NEW, 0),
            "quarantined": data.quarantined,
        },
        "outbox": {
            "pending": data.outbox_by_state.get(OutboxState.PENDING, 0),
            "failed": data.outbox_by_state.get(OutboxState.FAILED, 0),
            "sent": so_far.outbox_sent,
            "oldest_pending_at": local(data.oldest_pending_outbox_at),
        },
        "tickets": {
            "by_status": so_far.tickets_by_status,
            "spam_purged": sum(data.spam_purged.values()),
            "unanswered": data.unanswered,
            "overdue": data.overdue,
            "oldest_unanswered_age_seconds": int(data.oldest_unanswered_age(now)),
            "next_escalation_at": local(data.next_escalation_at),
        },
        "escalations": {str(level): n for level, n in sorted(so_far.escalations.items())},
        "daemon": _daemon(app),
    }
    document["instances"], document["sources"] = _owners(app, ownership(app), local)
    document["oauth"] = _sign_ins(app, local)
    document["attention"] = (
        _attention(data, document["daemon"])
        + _unpolled(document)
        + [s["problem"] for s in document["oauth"].values() if s["problem"]]
    )
    return document


def _sign_ins(
    app: App, local: Callable[[datetime | None], str | None]
) -> dict[str, dict[str, Any]]:
    """Each OAuth2 account's sign-in as its token file tells, daemon or not."""
    store, result = TokenStore(app.config.data_dir), {}
    for sign_in in sign_ins(app.config):
        entry: dict[str, Any] = {
            "provider": sign_in.provider,
            "flow": sign_in.flow,
            "state": "signed-in",
            "access_token_expires_at": None,
            "problem": None,
        }
        if sign_in.flow == "client_credentials":
            entry["state"] = "app"  # the app's own permission: nothing is kept
        else:
            try:
                record = store.load(sign_in)
            except SignInRequired as exc:
                record, entry["problem"] = None, str(exc)
            if record is None and entry["problem"] is None:
                entry["problem"] = sign_in.not_signed_in
            elif record is not None:
                entry["problem"] = record.problem
                entry["access_token_expires_at"] = local(record.expires_at)
            if entry["problem"]:
                entry["state"] = "signed-out"
        result[sign_in.key] = entry  # the mailbox name, or "[smtp]"
    return result


def _owners(
    app: App, view: Ownership, local: Callable[[datetime | None], str | None]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Registered instances (running: seen within takeover_after), and who polls each
    watched folder."""
    live = {i.id for i in view.instances if i.seen_at > view.now - view.ttl}
    instances = [
        {
            "id": i.id,
            "host": i.host,
            "pid": i.pid,
            "running": i.id in live,
            "started_at": local(i.started_at),
            "seen_ago_seconds": max(int((view.now - i.seen_at).total_seconds()), 0),
        }
        for i in view.instances
    ]
    sources = {}
    for mailbox in app.config.mailbox:
        for source in mailbox.sources():
            lease = view.leases.get(source.source_name)
            sources[source.source_name] = {
                "owner": holder(lease, live, view.now),
                "lease_expires_at": local(lease.expires_at) if lease else None,
            }
    return instances, sources


def _unpolled(document: dict[str, Any]) -> list[str]:
    """Mailboxes no running instance polls while some instance runs (none running at all
    is for `daemon` to say)."""
    if not any(i["running"] for i in document["instances"]):
        return []
    return [
        f"mailbox {name} is polled by no running instance: see the instances' logs"
        for name, source in document["sources"].items()
        if source["owner"] is None
    ]


def _daemon(app: App) -> dict[str, Any]:
    address = app.config.service.listen_address
    if address is None:
        return {"state": "unknown", "detail": "service.listen is not set"}
    host, port = address
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=DAEMON_TIMEOUT) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:  # 503: it answers, and is not well
        body = exc.read()
    except (OSError, ValueError) as exc:
        return {"state": "unreachable", "url": url, "detail": describe_error(exc)}
    try:
        health = json.loads(body)
    except ValueError:
        return {"state": "unreachable", "url": url, "detail": "not a mailbridge health answer"}
    return {
        "state": health.get("status", "unknown"),
        "url": url,
        "failing": health.get("failing", {}),
        "components": health.get("components", {}),
    }


def _attention(data: Snapshot, daemon: dict[str, Any]) -> list[str]:
    notes = []
    failed = data.outbox_by_state.get(OutboxState.FAILED, 0)
    if failed:
        notes.append(
            f"{failed} outgoing mail(s) or webhook delivery(ies) failed: "
            "mailbridge outbox list --state failed"
        )
    if data.quarantined:
        notes.append(f"{data.quarantined} message(s) quarantined: mailbridge quarantine list")
    if data.overdue:
        notes.append(
            f"{data.overdue} ticket(s) past their first-response deadline: "
            "mailbridge tickets list --overdue"
        )
    if daemon["state"] == "unreachable":
        notes.append(f"the daemon does not answer at {daemon['url']}: {daemon['detail']}")
    elif daemon["state"] not in ("ok", "unknown"):
        failing = "; ".join(f"{k}: {v}" for k, v in daemon.get("failing", {}).items())
        notes.append(f"the daemon is {daemon['state']}" + (f": {failing}" if failing else ""))
    return notes


def print_status(app: App, as_json: bool, out: TextIO) -> int:
    document = status_document(app)
    if as_json:
        out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_text(document, out)
    return 1 if document["attention"] else 0


def _print_text(doc: dict[str, Any], out: TextIO) -> None:
    out.write(f"mailbridge status at {doc['at']}, database {doc['database']}\n\n")
    for name, box in doc["mailboxes"].items():
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(box["by_kind"].items()))
        last = box["last_received_at"] or "never"
        out.write(
            f"mailbox {name}: {box['ingested']} message(s) ({kinds or 'none'}); "
            f"last received {last}\n"
        )
    inbound, outbox, tickets = doc["inbound"], doc["outbox"], doc["tickets"]
    out.write(
        f"inbound: {inbound['waiting']} waiting to be processed, "
        f"{inbound['quarantined']} quarantined\n"
    )
    out.write(
        f"outbox: {outbox['pending']} pending (oldest {outbox['oldest_pending_at'] or '-'}), "
        f"{outbox['failed']} failed, {outbox['sent']} sent\n"
    )
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(tickets["by_status"].items())) or "none"
    waited = format_duration(timedelta(seconds=tickets["oldest_unanswered_age_seconds"]), "en")
    out.write(
        f"tickets: {statuses}; {tickets['unanswered']} unanswered"
        + (f" (longest waiting {waited})" if tickets["unanswered"] else "")
        + f", {tickets['overdue']} overdue; next escalation "
        f"{tickets['next_escalation_at'] or 'none'}\n"
    )
    levels = ", ".join(f"level {lvl}: {n}" for lvl, n in doc["escalations"].items()) or "none"
    out.write(f"escalations fired: {levels}\n")
    _print_owners(doc, out)
    for account, sign_in in doc["oauth"].items():
        until = sign_in["access_token_expires_at"]
        out.write(
            f"oauth2 {account} ({sign_in['provider']}): {sign_in['state']}"
            + (f", access token until {until}" if until else "")
            + "\n"
        )
    daemon = doc["daemon"]
    line = f"daemon: {daemon['state']}"
    if daemon.get("url"):
        line += f" ({daemon['url']})"
    if daemon.get("detail"):
        line += f": {daemon['detail']}"
    out.write(line + "\n")
    for name, component in daemon.get("components", {}).items():
        detail = f": {component['detail']}" if component.get("detail") else ""
        out.write(f"  {name}: {component['state']}{detail}\n")
    out.write(
        "\n"
        + (
            "needs attention:\n" + "".join(f"  - {n}\n" for n in doc["attention"])
            if doc["attention"]
            else "nothing needs attention\n"
        )
    )


def _print_owners(doc: dict[str, Any], out: TextIO) -> None:
    running = sum(1 for i in doc["instances"] if i["running"])
    out.write(f"instances: {running} running\n")
    for instance in doc["instances"]:
        seconds = instance["seen_ago_seconds"]
        ago = f"{seconds} s" if seconds < 120 else format_duration(timedelta(seconds=seconds), "en")
        state = "" if instance["running"] else " (not running)"
        out.write(f"  {instance['id']}: last seen {ago} ago{state}\n")
    for name, source in doc["sources"].items():
        owner = source["owner"] or "no running instance"
        out.write(f"  mailbox {name}: polled by {owner}\n")


def configure(status: argparse.ArgumentParser) -> None:
    status.add_argument("--json", action="store_true", help="print a JSON object")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    with open_app(command_config(args)) as app:
        return print_status(app, args.json, sys.stdout)

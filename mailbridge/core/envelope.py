"""The envelope of a mail delivered over LMTP: which mailbox a recipient address reaches,
and the trace headers a delivery agent writes above the mail it stores."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

# Longest address taken from an envelope (RFC 5321: 64 + 1 + 255, the path's limits).
MAX_ADDRESS = 320


def recipient_routes(
    mailboxes: Iterable[tuple[str, str]], return_paths: Iterable[tuple[str, str]] = ()
) -> dict[str, str]:
    """Address (lower-cased) -> mailbox name, from (name, address) pairs, then from
    (name, envelope sender) pairs: where the mail a mailbox sends comes back when it
    bounces (VERP included), unless that address is another mailbox's own."""
    routes: dict[str, str] = {}
    for name, address in (*mailboxes, *return_paths):
        routes.setdefault(address.lower(), name)
    return routes


def mailbox_for(recipient: str, routes: Mapping[str, str]) -> str | None:
    """The mailbox `recipient` reaches: its own address, or a plus-address of it (the
    reply tokens of core/staff.py, the VERP return paths of core/bounce.py); else None."""
    if len(recipient) > MAX_ADDRESS:
        return None
    local, at, domain = recipient.rpartition("@")
    if not at or not local or not domain:
        return None
    exact = routes.get(f"{local}@{domain}".lower())
    if exact is not None:
        return exact
    base, plus, _detail = local.partition("+")
    return routes.get(f"{base}@{domain}".lower()) if plus and base else None


def header_safe(address: str) -> bool:
    """Can stand in a trace header as it is: no controls (CR, LF, NUL…), spaces or angle
    brackets, so an envelope address can never add a header or end the block."""
    return len(address) <= MAX_ADDRESS and all(
        (ord(c) > 0x20 and c not in "<>\x7f") and not 0x80 <= ord(c) <= 0x9F for c in address
    )


def trace_headers(sender: str, recipients: Sequence[str]) -> bytes:
    """Return-Path and one Delivered-To per recipient, as Dovecot's LDA and LMTP write
    them: the pipeline reads a null sender (a bounce) and an address reached only by Bcc
    (a reply token) from these, as it does in mail fetched over IMAP. The addresses must
    be header_safe."""
    if not all(header_safe(a) for a in (*recipients, *([sender] if sender else []))):
        raise ValueError("an envelope address unfit for a header")
    lines = [f"Return-Path: <{sender}>\r\n"]
    lines += [f"Delivered-To: {recipient}\r\n" for recipient in recipients]
    return "".join(lines).encode("utf-8")

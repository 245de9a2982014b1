"""The value types of the configuration file: durations, sizes, offsets from a deadline,
listen addresses, and the base every section is built on.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from mailbridge.core.sla import DURATION_UNITS, parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_size(value: object) -> int:
    """'25MB', '500KB', '2GB' (or a number of bytes) as bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match and int(match.group(1)) > 0:
            return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "B").upper()]
    raise ValueError("a size like 500KB, 25MB or 1GB")


ByteSize = Annotated[int, BeforeValidator(parse_size)]
Security = Literal["tls", "starttls", "none"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_OFFSET = re.compile(r"^\s*([+-]?)\s*(\d+)\s*(s|m|h|d|w)?\s*$")


def parse_offset(value: object) -> timedelta:
    """'-1h' (before), '0' (at), '+4h' (after) a deadline, as a signed timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _OFFSET.match(value)
        if match and (match.group(3) or int(match.group(2)) == 0):
            size = timedelta(**{DURATION_UNITS[match.group(3) or "s"]: int(match.group(2))})
            return -size if match.group(1) == "-" else size
    raise ValueError("an offset from the deadline like -1h (before), 0 (at) or +4h (after)")


Offset = Annotated[timedelta, BeforeValidator(parse_offset)]
Priority = Literal["low", "normal", "high", "urgent"]  # lowest first, as core.sla.PRIORITIES
EmailAddress = Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")]


_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")


def is_loopback(host: str) -> bool:
    """Only this machine can reach host: localhost or a loopback IP (127.0.0.0/8, ::1).
    A host name other than localhost may resolve to anything, so it is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9187" or "[::1]:9187" as (host, port)."""
    match = _LISTEN.match(value.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError('an address like "127.0.0.1:9187" or "[::1]:9187"')
    return match["v6"] or match["host"], int(match["port"])

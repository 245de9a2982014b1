"""[lmtp]: where the listener is, and what a wrong value says."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.config import load_config
from tests.support.config_files import MINIMAL, SECRETS, problem, write

pytestmark = pytest.mark.unit


def test_no_lmtp_section_means_no_listener(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL), SECRETS).lmtp is None


def test_a_socket_or_a_loopback_address(tmp_path: Path) -> None:
    text = MINIMAL + '\n[lmtp]\nlisten = "unix:/run/mailbridge/lmtp.sock"\nsocket_mode = "0666"\n'
    lmtp = load_config(write(tmp_path, text), SECRETS).lmtp
    assert lmtp is not None
    assert (lmtp.socket_path, lmtp.tcp_address, lmtp.socket_mode) == (
        Path("/run/mailbridge/lmtp.sock"),
        None,
        0o666,
    )
    tcp = load_config(write(tmp_path, MINIMAL + '\n[lmtp]\nlisten = "[::1]:24"\n'), SECRETS).lmtp
    assert tcp is not None and tcp.tcp_address == ("::1", 24)


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ('"0.0.0.0:24"', "listen_public = true"),
        ('"unix:lmtp.sock"', "an absolute socket path"),
        ('"localhost"', '"127.0.0.1:24"'),
    ],
)
def test_a_wrong_listen_says_what_is_expected(tmp_path: Path, listen: str, said: str) -> None:
    message = problem(tmp_path, MINIMAL + f"\n[lmtp]\nlisten = {listen}\n")
    assert "lmtp.listen" in message and said in message


def test_an_address_others_reach_needs_saying_so(tmp_path: Path) -> None:
    text = MINIMAL + '\n[lmtp]\nlisten_public = true\nlisten = "0.0.0.0:24"\n'
    lmtp = load_config(write(tmp_path, text), SECRETS).lmtp
    assert lmtp is not None and lmtp.tcp_address == ("0.0.0.0", 24)

"""Shared parts of the benchmarks: generated mail, a private IMAP server, a counting SMTP
sink, a throwaway database and a configuration file pointing mailbridge at all three.

Everything listens on 127.0.0.1 only and is removed again when its context ends.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from mailbridge.demo.imap_server import EmbeddedImapServer  # noqa: E402
from mailbridge.demo.smtp_sink import SmtpSink  # noqa: E402

if TYPE_CHECKING:
    from sqlalchemy import Engine

IMAP_PASSWORD_ENV = "MB_BENCH_IMAP_PASSWORD"
SUPPORT = "support@shop.example"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# --- generated mail --------------------------------------------------------------------

_FIRST = [
    "Giulia",
    "Marco",
    "Jürgen",
    "Anaïs",
    "Françoise",
    "Björn",
    "Ada",
    "Lukas",
    "Chiara",
    "Élodie",
    "Sören",
    "Niccolò",
    "Grace",
    "Hélène",
    "Matthias",
    "Zoë",
]
_LAST = [
    "Rossi",
    "Müller",
    "Lefèvre",
    "Bianchi",
    "Schröder",
    "Dubois",
    "Lovelace",
    "Esposito",
    "Weiß",
    "Girard",
    "Conti",
    "Großmann",
    "Hopper",
    "Faure",
]
_DOMAINS = ["example.it", "beispiel.de", "exemple.fr", "customer.example", "mail.example"]

_TEXT = {
    "it": {
        "subjects": [
            "Problema con l'ordine n. {n}",
            "Fattura errata – perché?",
            "Richiesta di reso: articolo danneggiato",
            "Non riesco più ad accedere",
            "Consegna in ritardo, città: Forlì",
            "Domanda sulla garanzia già attivata",
        ],
        "lines": [
            "Buongiorno, vi scrivo perché l'ordine non è ancora arrivato.",
            "Ho già provato a contattarvi per telefono, però nessuno ha risposto.",
            "La fattura riporta un importo di 129,90 € invece di 99,90 €.",
            "Potreste verificare e farmi sapere entro venerdì?",
            "Il pacco è arrivato aperto e la scatola era danneggiata.",
            "Allego la foto dello scontrino e il numero di serie.",
            "Grazie mille per l'attenzione, cordiali saluti.",
        ],
        "quote": "Il {date}, {name} <{addr}> ha scritto:",
        "re": "R: ",
    },
    "de": {
        "subjects": [
            "Problem mit Bestellung Nr. {n}",
            "Rechnung fehlerhaft – Rückerstattung?",
            "Lieferung verspätet, Größe falsch",
            "Zugang gesperrt, bitte prüfen",
            "Frage zur Gewährleistung",
            "Rücksendung: Gerät überhitzt",
        ],
        "lines": [
            "Sehr geehrte Damen und Herren, meine Bestellung ist noch nicht da.",
            "Ich habe schon zweimal angerufen, leider ohne Erfolg.",
            "Die Rechnung enthält 129,90 € statt 99,90 €, bitte korrigieren Sie das.",
            "Das Gerät wird nach wenigen Minuten sehr heiß und schaltet sich ab.",
            "Könnten Sie mir bis Freitag eine Rückmeldung geben?",
            "Im Anhang finden Sie ein Foto des Kassenbons.",
            "Mit freundlichen Grüßen und vielen Dank im Voraus.",
        ],
        "quote": "Am {date} schrieb {name} <{addr}>:",
        "re": "AW: ",
    },
    "fr": {
        "subjects": [
            "Problème avec la commande n° {n}",
            "Facture erronée, remboursement ?",
            "Livraison en retard à Besançon",
            "Accès bloqué à mon compte",
            "Question sur la garantie déjà activée",
            "Retour : appareil défectueux",
        ],
        "lines": [
            "Bonjour, ma commande n'est toujours pas arrivée.",
            "J'ai déjà appelé deux fois, sans réponse de votre part.",
            "La facture indique 129,90 € au lieu de 99,90 €, pourriez-vous vérifier ?",
            "L'appareil chauffe beaucoup et s'éteint après quelques minutes.",
            "Merci de me répondre avant vendredi si possible.",
            "Vous trouverez ci-joint une photo du reçu.",
            "Je vous remercie d'avance, bien cordialement.",
        ],
        "quote": "Le {date}, {name} <{addr}> a écrit :",
        "re": "RE : ",
    },
    "en": {
        "subjects": [
            "Problem with order #{n}",
            "Wrong invoice – refund?",
            "Late delivery to Zürich",
            "Locked out of my account",
            "Warranty question",
            "Return: device overheats",
        ],
        "lines": [
            "Hello, my order still has not arrived.",
            "I already called twice but nobody answered.",
            "The invoice says €129.90 instead of €99.90, could you check?",
            "The device gets very hot and switches off after a few minutes.",
            "Could you get back to me by Friday?",
            "Please find a photo of the receipt attached.",
            "Thanks in advance, kind regards.",
        ],
        "quote": "On {date}, {name} <{addr}> wrote:",
        "re": "Re: ",
    },
}
_LANGS = list(_TEXT)
# kind: weight. Attachments are 10-300 KB, so they carry most of the bytes.
_KINDS = {"plain": 32, "html": 15, "alternative": 25, "attachment": 10, "reply": 18}


def _body(rng: random.Random, lang: str, name: str) -> str:
    lines = _TEXT[lang]["lines"]
    paragraphs = [
        " ".join(rng.choices(lines, k=rng.randint(1, 4))) for _ in range(rng.randint(1, 5))
    ]
    return "\n\n".join(paragraphs) + f"\n\n{name}\n"


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    return (
        '<html><head><meta charset="utf-8"><style>p{font-family:Arial}</style></head>'
        f'<body><div dir="ltr">{paragraphs}<ul><li>Bestellung/ordine/commande</li>'
        '<li><a href="https://shop.example/orders">shop.example/orders</a></li></ul>'
        "</div></body></html>"
    )


def _quoted(rng: random.Random, lang: str, when: datetime) -> str:
    earlier = _body(rng, lang, "Support")
    header = _TEXT[lang]["quote"].format(
        date=format_datetime(when - timedelta(days=1)), name="Shop Support", addr=SUPPORT
    )
    return header + "\n" + "\n".join(f"> {line}" if line else ">" for line in earlier.splitlines())


# Generated senders share five domains and one mailbox: with the hourly acknowledgement
# limits lifted every mail is acknowledged, as measuring tickets "with acknowledgements
# queued" needs (the defaults withhold all but about 100 an hour of them, rightly).
ACK_EVERY_MAIL = (
    "ack_limit_per_hour = 100000\nack_domain_limit_per_hour = 100000\n"
    "ack_mailbox_limit_per_hour = 100000\n"
)


def tickets_table(*lines: str) -> str:
    """A `[tickets]` table for `write_config(more=…)`: every mail acknowledged, plus
    `lines` (each a whole TOML line)."""
    return "\n[tickets]\n" + ACK_EVERY_MAIL + "".join(lines)


# What `spam_share` makes of a mail: a blocklisted sender, or a bulk mailer a header rule
# marks as spam (SPAM_TOML configures both).
SPAM_TOML = """
[spam]
block = ["*@spam.example"]

[[rule]]
name = "bulk mailers"
when.header = { name = "X-Mailer", matches = "blast ?mailer" }
then.spam = true
"""


def generate(
    n: int, seed: int = 1, spam_share: float = 0.0, attachment_mb: int = 0
) -> Iterator[bytes]:
    """n realistic customer mails, the same for the same seed; one at a time. With
    `spam_share`, that share of them (chosen by the seed) is spam: half from a blocklisted
    sender, half sent by a bulk mailer; the mails are otherwise the same as without. With
    `attachment_mb`, every mail also carries a PDF-like scan of that many MB."""
    rng = random.Random(seed)
    spam_rng = random.Random(seed + 1)  # its own draws: the mails stay those of the seed
    now = datetime.now(UTC)
    kinds, weights = list(_KINDS), list(_KINDS.values())
    for i in range(n):
        lang = rng.choice(_LANGS)
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        # A distinct sender per mail, so the per-sender acknowledgement limit never bites.
        addr = f"{name.split()[0].lower()}.{i}@{rng.choice(_DOMAINS)}".encode(
            "ascii", "ignore"
        ).decode()
        when = now - timedelta(seconds=rng.randint(60, 1800))
        kind = rng.choices(kinds, weights)[0]
        subject = rng.choice(_TEXT[lang]["subjects"]).format(n=10000 + i)
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = f"{name} <{addr}>"
        msg["To"] = f"Shop Support <{SUPPORT}>"
        msg["Date"] = format_datetime(when)
        msg["Message-ID"] = f"<bench.{seed}.{i}.{rng.getrandbits(48):x}@{addr.split('@')[1]}>"
        text = _body(rng, lang, name)
        if kind == "reply":
            subject = _TEXT[lang]["re"] + subject
            parent = f"<ack.{seed}.{i}@shop.example>"
            msg["In-Reply-To"] = parent
            msg["References"] = f"<orig.{seed}.{i}@{addr.split('@')[1]}> {parent}"
            text = text + "\n" + _quoted(rng, lang, when) + "\n"
        msg["Subject"] = subject
        if spam_rng.random() < spam_share:
            if i % 2:
                msg.replace_header("From", f"Best Offers <offers.{i}@spam.example>")
            else:
                msg["X-Mailer"] = "BlastMailer 9.1"
        if kind == "html":
            msg.set_content(_html(text), subtype="html")
        else:
            msg.set_content(text)
            if kind in ("alternative", "reply") and rng.random() < 0.6:
                msg.add_alternative(_html(text), subtype="html")
        if kind == "attachment":
            _attach(rng, msg, lang)
        if attachment_mb:
            scan = b"%PDF-1.4\n" + rng.randbytes(attachment_mb << 20)
            msg.add_attachment(scan, maintype="application", subtype="pdf", filename="scan.pdf")
        yield msg.as_bytes()


def _attach(rng: random.Random, msg: EmailMessage, lang: str) -> None:
    size = rng.randint(10_000, 300_000)
    if rng.random() < 0.5:
        data = b"%PDF-1.4\n" + rng.randbytes(size)
        names = {
            "it": "Fattura_n°42_è.pdf",
            "de": "Rechnung_Größe.pdf",
            "fr": "Reçu_éléphant.pdf",
            "en": "invoice.pdf",
        }
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=names[lang])
    else:
        data = b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)
        msg.add_attachment(data, maintype="image", subtype="png", filename="foto_scontrino.png")


# --- IMAP servers ------------------------------------------------------------------------


class ImapServer(Protocol):
    host: str
    port: int
    username: str
    password: str


def imap_client(server: ImapServer, timeout: float = 60.0) -> IMAPClient:
    client = IMAPClient(server.host, server.port, ssl=False, timeout=timeout)
    # Without it each APPEND waits out a delayed ACK between command and literal.
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.login(server.username, server.password)
    return client


@contextmanager
def imap_server(kind: str) -> Iterator[ImapServer]:
    """A private, empty IMAP server on 127.0.0.1: Dovecot (own process) or pymap (a thread)."""
    if kind == "dovecot":
        if shutil.which("dovecot") is None:
            raise SystemExit("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
        from tests.support.dovecot import DovecotServer

        dovecot = DovecotServer()
        try:
            yield dovecot.start()
        finally:
            dovecot.stop()
    elif kind == "pymap":
        with EmbeddedImapServer() as pymap:
            yield pymap
    else:
        raise ValueError(f"unknown server {kind!r}")


def fill(
    server: ImapServer,
    n: int,
    seed: int = 1,
    folder: str = "INBOX",
    spam_share: float = 0.0,
    attachment_mb: int = 0,
) -> tuple[int, int]:
    """APPEND n generated mails (`spam_share` of them spam, each with a scan of
    `attachment_mb` MB); returns (count, bytes)."""
    count = size = 0
    client = imap_client(server, timeout=600.0 if attachment_mb else 60.0)
    try:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        for raw in generate(n, seed, spam_share, attachment_mb):
            client.append(folder, raw)
            count += 1
            size += len(raw)
    finally:
        client.logout()
    return count, size


# --- SMTP sink ---------------------------------------------------------------------------


class CountingSink(SmtpSink):
    """Accepts every mail and notes when it arrived; keeps no bytes and parses nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []  # time.monotonic() of each accepted DATA

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._arrived:
            self.arrivals.append(time.monotonic())
            self._arrived.notify_all()
            return f"250 2.0.0 OK queued as {len(self.arrivals)}"

    def wait_count(self, count: int, timeout: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.arrivals) >= count, timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- database and configuration ----------------------------------------------------------


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in workdir, or a fresh PostgreSQL db."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'mailbridge.db'}"
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database {kind!r}")
    from sqlalchemy import create_engine, text

    name = f"mailbridge_bench_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrated(url: str, search_index: bool = True) -> Engine:
    """The engine of a database migrated to head; without the full-text index and its
    triggers when search_index is False, to measure what they cost."""
    from mailbridge.db import migrate
    from mailbridge.db import search_index as index
    from mailbridge.db.engine import make_engine

    engine = make_engine(url)
    migrate.upgrade(engine)
    if not search_index:
        with engine.begin() as connection:
            index.drop(connection)
    return engine


def write_config(
    workdir: Path,
    imap: ImapServer,
    smtp_port: int,
    db_url: str,
    team: bool = False,
    more: str = "",
    mailboxes: Sequence[tuple[str, str]] = (("support", "INBOX"),),
    **service: str,
) -> Path:
    """team=True adds staff.team_address: every ticket also notifies the team (a second
    mail per message, which a sink counting acknowledgements must not see). `more` is
    TOML appended as it is (SPAM_TOML). `mailboxes`: (name, folder) of each [[mailbox]],
    all on the one IMAP account; the first answers as SUPPORT. `service` keys go to
    [service], except `processing_turn`, which goes to [database]."""
    processing_turn = service.pop("processing_turn", "narrow")
    extra = "".join(f'{key} = "{value}"\n' for key, value in service.items())
    team_address = 'team_address = "team@shop.example"' if team else ""
    path = workdir / "mailbridge.toml"
    boxes = "".join(
        f"""
[[mailbox]]
name = "{name}"
address = "{SUPPORT if n == 0 else f"{name}@shop.example"}"
folder = "{folder}"
host = "{imap.host}"
port = {imap.port}
security = "none"
username = "{imap.username}"
password_env = "{IMAP_PASSWORD_ENV}"
after = "move"
processed_folder = "{"Processed" if n == 0 else f"Processed-{name}"}"
# Generated mail is already waiting at the first connection: treat it as new.
backlog = "acknowledge"
"""
        for n, (name, folder) in enumerate(mailboxes)
    )
    path.write_text(
        f"""\
[database]
url = "{db_url}"
auto_migrate = true
processing_turn = "{processing_turn}"
{boxes}
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "Shop Support <{SUPPORT}>"

[[sla]]
name = "standard"
first_response = "8h"
resolution = "5d"

[staff]
{team_address}
escalation_address = "lead@shop.example"

[service]
data_dir = "{workdir}"
{extra}{more}""",
        encoding="utf-8",
    )
    return path


def child_env(imap: ImapServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    env[IMAP_PASSWORD_ENV] = imap.password
    return env


def mailbridge_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mailbridge", "--config", str(config), *args]


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- child processes ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChildResult:
    returncode: int
    seconds: float
    max_rss_mb: float  # the child's own peak (VmHWM)
    helpers_max_rss_mb: float  # the largest peak among the processes it started
    tree_rss_mb: float  # peak of the summed RSS of the child and its descendants, sampled
    tree_pss_mb: float  # the same for PSS: shared pages counted once across the tree
    # User and system CPU of the child and the processes it reaped (wait4): less swayed
    # than wall time by what else the machine runs.
    cpu_seconds: float = 0.0
    helpers: int = 0  # processes it started (the forkserver and each parse worker), seen


def run_child(command: list[str], env: dict[str, str], log: Path, timeout: float) -> ChildResult:
    """Run to completion (killed after timeout): wall time, and memory of the child and of
    the processes it starts (mailbridge may parse in a second process), sampled."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=out)
        timer = threading.Timer(timeout, _kill, (proc.pid,))
        timer.start()
        sampler = _TreeMemory(proc.pid)
        sampler.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            sampler.stop()
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildResult(
        proc.returncode,
        seconds,
        sampler.peaks.get(proc.pid, 0.0),
        max((v for k, v in sampler.peaks.items() if k != proc.pid), default=0.0),
        sampler.tree_rss,
        sampler.tree_pss,
        usage.ru_utime + usage.ru_stime,
        len(sampler.peaks) - (proc.pid in sampler.peaks),
    )


class _TreeMemory(threading.Thread):
    """Every 50 ms each process's own peak (VmHWM) and the summed RSS of the tree, every
    200 ms its summed PSS (Linux /proc; PSS costs the kernel a page-table walk, about
    1 ms per 100 MB). The sums are samples: a peak between two may be missed."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peaks: dict[int, float] = {}
        self.tree_rss = self.tree_pss = 0.0
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        tick = 0
        while not self._done.wait(0.05):
            tick += 1
            rss = pss = 0.0
            for pid in self._tree():
                fields = _proc_fields(pid, "status", ("VmHWM:", "VmRSS:"))
                if "VmHWM:" in fields:
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), fields["VmHWM:"])
                rss += fields.get("VmRSS:", 0.0)
                if tick % 4 == 0:
                    pss += _proc_fields(pid, "smaps_rollup", ("Pss:",)).get("Pss:", 0.0)
            self.tree_rss, self.tree_pss = max(self.tree_rss, rss), max(self.tree_pss, pss)

    def _tree(self) -> list[int]:
        found, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            with suppress(OSError, ValueError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
        return found


def _proc_fields(pid: int, name: str, keys: tuple[str, ...]) -> dict[str, float]:
    """The named kB fields of /proc/PID/NAME, in MB; {} once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
    except OSError:
        return {}
    return {line.split()[0]: int(line.split()[1]) / 1024 for line in lines if line.startswith(keys)}


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def peak_rss_mb() -> float:
    """VmHWM of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def mb(size: int) -> float:
    return size / 1_000_000


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0

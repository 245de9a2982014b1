"""The fault run: real `mailbridge run` processes against pymap, an aiosmtpd sink and a
database (a SQLite file, or a private PostgreSQL cluster), customer mail arriving all the
time, and one fault after another, each followed by a measured recovery:

- kill -9 of the daemon at random moments, restarted at once;
- the IMAP server stopped while the daemon IDLEs, and while it fetches a burst;
- the SMTP server answering 451 to every DATA for a while, then cutting connections
  mid-DATA;
- (PostgreSQL) the database server stopped and started again;
- (PostgreSQL) three instances, and the one owning the mailbox killed.

`run(plan, workdir)` does it all and returns the table and the broken promises (none, when
mailbridge keeps them). The ledger (tests/faults/ledger.py) says what "recovered" means.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.faults.cluster import PrivatePostgres
from tests.faults.daemons import (
    DaemonProcess,
    child_env,
    free_port,
    mailbridge,
    separate_hosts_possible,
)
from tests.faults.ledger import Account, Ledger
from tests.faults.report import Phase, Row, problems, rows, table
from tests.faults.takeover import leases_supported, owner_takeover
from tests.faults.traffic import Injector

IMAP_PASSWORD = "faults-imap-secret"
PASSWORD_ENV = "MB_FAULTS_IMAP_PASSWORD"
MAILBOX = "mailbox:support"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """Sizes of one run. The defaults are the CI size; bench/faults.py passes larger ones."""

    database: str = "sqlite"  # sqlite | postgresql
    kills: int = 20
    kill_gap: tuple[float, float] = (0.5, 3.0)  # seconds from a (re)start to the next kill
    imap_outage: float = 4.0
    smtp_refusal: float = 8.0
    smtp_drops: int = 3
    pg_outage: float = 4.0  # PostgreSQL only; 0 skips it
    instances: int = 3  # PostgreSQL only; fewer than 2 skips the takeover
    takeover_after: float | None = 4.0  # service.takeover_after; None: the daemon's default
    separate_hosts: bool = True  # each instance under a host name of its own, when possible
    rate: float = 6.0  # customer mails per second
    burst: int = 120  # mails injected at once before stopping the server mid-FETCH
    seed: int = 1
    recovery_timeout: float = 120.0  # the longest a recovery may take before it is a failure


@dataclass
class Outcome:
    plan: Plan
    phases: list[Phase]
    account: Account
    rows: list[Row]
    problems: list[str]
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # name -> tail of its log
    read_errors: str = ""  # the ledger's failed looks at the database, if any

    @property
    def table(self) -> str:
        unmarked = sum(p.between_accept_and_mark for p in self.phases)
        notes = [f"{p.label}: {n.lstrip('! ')}" for p in self.phases for n in p.notes]
        lines = [
            table(self.rows),
            f"kills or outages between SMTP acceptance and marking: {unmarked}",
            *notes,
        ]
        if self.read_errors:
            lines.append(self.read_errors)
        return "\n".join(lines)

    def explain(self) -> str:
        """The table, what went wrong, and the end of each daemon's log."""
        parts = [self.table, *(f"PROBLEM: {p}" for p in self.problems)]
        if self.problems:
            parts += [f"--- {name} (last lines) ---\n{tail}" for name, tail in self.logs.items()]
        return "\n".join(parts)


class World:
    """The servers, the database, the config files, the mail and the daemons of one run."""

    def __init__(self, plan: Plan, workdir: Path, stack: ExitStack, say: Say) -> None:
        self.plan = plan
        self.workdir = workdir
        self.say = say
        self.rng = random.Random(plan.seed)
        self.sink = stack.enter_context(SmtpSink())
        self.imap = stack.enter_context(EmbeddedImapServer(password=IMAP_PASSWORD))
        self.postgres: PrivatePostgres | None = None
        if plan.database == "postgresql":
            self.postgres = stack.enter_context(PrivatePostgres())
            self.database_url = self.postgres.url()
        elif plan.database == "sqlite":
            self.database_url = f"sqlite:///{workdir / 'mailbridge.db'}"
        else:
            raise ValueError(f"unknown database {plan.database!r}")
        self.env = child_env({PASSWORD_ENV: IMAP_PASSWORD})
        self.daemons: list[DaemonProcess] = []
        stack.callback(self._close_daemons)
        self.injector = Injector(self.imap, plan.rate, plan.seed)
        stack.callback(self.injector.finish, 0)
        self.ledger = Ledger(self.database_url, self.injector, self.sink)
        stack.callback(self.ledger.close)
        self.counted_unmarked: dict[str, int] = {}  # Message-ID -> acceptances seen
        self.separate_hosts = plan.separate_hosts and separate_hosts_possible()

    def _close_daemons(self) -> None:
        for daemon in self.daemons:
            daemon.close()

    def config(self, port: int | None) -> Path:
        """The configuration file of an instance serving /healthz on `port` (None: none)."""
        takeover = ""
        if self.plan.takeover_after is not None and leases_supported():
            takeover = f'takeover_after = "{self.plan.takeover_after:g}s"'
        path = self.workdir / f"mailbridge-{port or 'cli'}.toml"
        path.write_text(
            f"""\
[database]
url = "{self.database_url}"
auto_migrate = true

[[mailbox]]
name = "support"
address = "support@shop.example"
host = "{self.imap.host}"
port = {self.imap.port}
security = "none"
username = "{self.imap.username}"
password_env = "{PASSWORD_ENV}"
after = "move"
backlog = "acknowledge"
poll_interval = "5s"
# Small batches: a burst takes several FETCH round trips, so "mid-FETCH" is a real moment.
batch_size = 25

[smtp]
host = "{self.sink.host}"
port = {self.sink.port}
security = "none"
from = "Shop Support <support@shop.example>"
timeout = "5s"

[[sla]]
name = "standard"
first_response = "8h"
resolution = "5d"

[staff]
escalation_address = "lead@shop.example"

[tickets]
# Mail arrives all the time from a few generated domains and no trusted MTA vouches for
# it: limits this high let every acknowledgement go, which the ledger counts.
ack_domain_limit_per_hour = 100000
ack_mailbox_limit_per_hour = 100000

[service]
data_dir = "{self.workdir / "data"}"
{f'listen = "127.0.0.1:{port}"' if port else ""}
outbox_interval = "1s"
sweep_interval = "5s"
{takeover}
""",
            encoding="utf-8",
        )
        return path

    def new_daemon(self) -> DaemonProcess:
        """One more instance: the same configuration but for its /healthz port, and on a
        host of its own when the machine allows (so a dead owner is found out by its lease
        expiring, as across machines, not by a look at the local process table)."""
        port = free_port()
        number = len(self.daemons) + 1
        name = f"instance-{number}"
        hostname = f"mailbridge-faults-{number}" if self.separate_hosts else None
        daemon = DaemonProcess(
            name, self.config(port), self.env, self.workdir / f"{name}.log", port, hostname
        )
        self.daemons.append(daemon)
        return daemon

    @property
    def live(self) -> list[DaemonProcess]:
        return [d for d in self.daemons if d.alive]

    def migrate(self) -> None:
        """Once, before any daemon: several instances must not race to create the schema."""
        done = mailbridge(self.config(None), self.env, "db", "upgrade")
        if done.returncode != 0:
            raise RuntimeError(f"mailbridge db upgrade failed:\n{done.stdout}{done.stderr}")

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Every live daemon stopped (SIGSTOP) for a look at the database that must not race
        with them, then continued."""
        paused = self.live
        for daemon in paused:
            daemon.pause(True)
        try:
            yield
        finally:
            for daemon in paused:
                daemon.pause(False)

    def kill(self, daemon: DaemonProcess, phase: Phase) -> None:
        """kill -9, then count it if the sink holds a mail left unmarked by it."""
        with self.frozen():
            daemon.kill()
            phase.kills += 1
            self.count_unmarked(phase)

    def count_unmarked(self, phase: Phase) -> None:
        """Count a kill or an outage that came between SMTP acceptance and marking: the sink
        accepted a mail whose outbox row is not marked sent (and not counted at that many
        acceptances before).
        Call it while the daemons are frozen, or one may re-send and mark it first."""
        try:
            unmarked = self.ledger.accepted_unmarked()
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            phase.notes.append(f"! could not check for unmarked mail: {exc}")
            return
        # Accepted again since the last look (a re-send that was cut short once more) counts.
        fresh = {m for m, n in unmarked.items() if n > self.counted_unmarked.get(m, 0)}
        if fresh:
            phase.between_accept_and_mark += 1
            self.counted_unmarked.update(unmarked)
            phase.notes.append(
                f"accepted by the SMTP server but not marked sent: {', '.join(sorted(fresh))}"
            )

    def recover(self, phase: Phase) -> None:
        """The fault ended now: measure the recovery and wait for it."""
        tracked = self.ledger.recovery(phase.label)
        phase.recoveries.append(tracked)
        self.ledger.wait([tracked], self.plan.recovery_timeout)
        self.say(f"  {phase.label}: recovery {phase.recovery_text()} s")


# --- the faults ------------------------------------------------------------------------


def steady(world: World) -> Phase:
    """One daemon up and mail flowing before any fault."""
    phase = Phase("steady flow", time.monotonic())
    daemon = world.new_daemon()
    daemon.start()
    if not daemon.wait_healthy(60):
        raise RuntimeError(f"the daemon did not become healthy:\n{daemon.tail()}")
    world.injector.start()
    world.ledger.start()
    time.sleep(3)
    if not world.ledger.wait_for_all(world.plan.recovery_timeout):
        phase.notes.append("! mail did not flow before the first fault")
    return phase


def kills(world: World) -> Phase:
    """kill -9 at a random moment after each (re)start, and restart at once."""
    plan = world.plan
    phase = Phase(f"kill -9 x{plan.kills}", time.monotonic())
    daemon = world.daemons[0]
    for _ in range(plan.kills):
        time.sleep(world.rng.uniform(*plan.kill_gap))
        world.kill(daemon, phase)
        daemon.start()
        phase.recoveries.append(world.ledger.recovery(phase.label))
    world.ledger.wait(phase.recoveries, plan.recovery_timeout)
    world.say(f"  {phase.label}: recovery {phase.recovery_text()} s")
    return phase


def imap_outage(world: World, moment: str) -> Phase:
    """Stop the IMAP server for plan.imap_outage seconds while the mailbox component is
    "idle" (in IDLE) or "fetching" (a burst of mail in hand)."""
    seconds = world.plan.imap_outage
    label = "IDLE" if moment == "idle" else "FETCH"
    phase = Phase(f"IMAP down {seconds:g} s mid-{label}", time.monotonic())
    daemon = world.live[0]
    if moment == "fetching":
        world.injector.burst(world.plan.burst)
    if not daemon.wait_state(MAILBOX, moment, 30):
        phase.notes.append(f"! the mailbox was never seen {moment!r}; stopped the server anyway")
    world.imap.stop()
    time.sleep(seconds)
    world.imap.start()
    world.recover(phase)
    return phase


def smtp_outage(world: World) -> Phase:
    """451 to every DATA for plan.smtp_refusal seconds, then plan.smtp_drops connections
    cut mid-DATA; the fault ends with the last cut."""
    plan = world.plan
    phase = Phase(
        f"SMTP 451 for {plan.smtp_refusal:g} s, {plan.smtp_drops} cut mid-DATA", time.monotonic()
    )
    world.sink.fail_always(451, "4.3.0 try again later")
    time.sleep(plan.smtp_refusal)
    wanted = world.sink.mid_data_cuts + plan.smtp_drops
    world.sink.recover()
    world.sink.drop_mid_data_next(plan.smtp_drops)
    deadline = time.monotonic() + 60
    while world.sink.mid_data_cuts < wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    if world.sink.mid_data_cuts < wanted:
        phase.notes.append(
            f"! only {plan.smtp_drops - wanted + world.sink.mid_data_cuts} "
            f"of {plan.smtp_drops} connections were cut mid-DATA"
        )
        world.sink.recover()
    world.recover(phase)
    return phase


def database_outage(world: World) -> Phase:
    assert world.postgres is not None
    seconds = world.plan.pg_outage
    phase = Phase(f"PostgreSQL down {seconds:g} s", time.monotonic())
    world.postgres.stop()
    time.sleep(seconds)
    with world.frozen():
        world.postgres.start()
        world.count_unmarked(phase)
    world.recover(phase)
    return phase


# --- the run ---------------------------------------------------------------------------


def schedule(plan: Plan) -> list[Callable[[World], Phase]]:
    steps: list[Callable[[World], Phase]] = [
        steady,
        kills,
        lambda w: imap_outage(w, "idle"),
        lambda w: imap_outage(w, "fetching"),
        smtp_outage,
    ]
    if plan.database == "postgresql":
        if plan.pg_outage > 0:
            steps.append(database_outage)
        if plan.instances >= 2:
            steps.append(owner_takeover)
    return steps


@contextmanager
def world(plan: Plan, workdir: Path, say: Say) -> Iterator[World]:
    with ExitStack() as stack:
        yield World(plan, workdir, stack, say)


def run(plan: Plan, workdir: Path, say: Say = lambda _: None) -> Outcome:
    """The whole run: faults in turn while mail flows, then heal, stop and count."""
    with world(plan, workdir, say) as w:
        w.migrate()
        phases: list[Phase] = []
        for step in schedule(plan):
            phases.append(step(w))
            say(f"done: {phases[-1].label}")
        exit_codes = finish(w, phases[-1])
        account = w.ledger.account()
        table_rows = rows(phases, w.injector.injected, account)
        found = problems(account, phases, plan.kills)
        found += [
            f"{name} exited {code} after SIGTERM" for name, code in exit_codes.items() if code != 0
        ]
        logs = {d.name: d.tail() for d in w.daemons}
        errors = (
            f"the harness could not read the database {w.ledger.errors} time(s) "
            f"(expected while it is down), last: {w.ledger.last_error}"
            if w.ledger.errors
            else ""
        )
        outcome = Outcome(plan, phases, account, table_rows, found, exit_codes, logs, errors)
    (workdir / "outcome.txt").write_text(outcome.explain() + "\n", encoding="utf-8")
    return outcome


def finish(w: World, last: Phase) -> dict[str, int | None]:
    """Stop injecting, heal everything, wait until every mail is done, stop with SIGTERM."""
    w.sink.recover()
    w.imap.start()
    if w.postgres is not None and not w.postgres.running:
        w.postgres.start()
    if not w.injector.finish(60):
        last.notes.append("! the injector could not deliver all its queued mail")
    if not w.ledger.wait_for_all(w.plan.recovery_timeout):
        last.notes.append("! not every mail was done before the daemons were stopped")
    codes = {d.name: d.terminate() for d in w.daemons if d.alive}
    w.ledger.stop()
    w.ledger.advance()
    return codes

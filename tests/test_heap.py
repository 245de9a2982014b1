"""The start-up heap frozen out of the collector's reach (mailbridge/heap.py), and thawed
again at a reload so that what the reload replaced is freed."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path
from types import SimpleNamespace

from mailbridge import heap
from mailbridge.app import build_app, open_templates
from mailbridge.inbound.parse_worker import ParseWorker
from mailbridge.service.daemon import Daemon
from tests.support.builders import make_config


class Node:
    """A reference cycle, as so much of a start-up heap is."""

    def __init__(self) -> None:
        self.me = self


def test_settled_objects_are_out_of_reach_until_settled_again() -> None:
    node = Node()
    alive = weakref.ref(node)
    heap.settle()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert alive() is not None, "a full collection walked a frozen object"
    heap.settle()  # thaws first: what became garbage since is collected
    assert alive() is None


def test_a_reload_frees_the_template_set_it_replaced(tmp_path: Path, sqlite_url: str) -> None:
    nowhere = SimpleNamespace(host="127.0.0.1", port=9, username="support", password="unused")
    config = make_config(tmp_path, database_url=sqlite_url, imap=nowhere, smtp=nowhere)
    app = build_app(config)
    try:
        daemon = Daemon(app)
        # Its Jinja environment is a cycle (it caches the templates that point back at it).
        old = weakref.ref(app.templates._env)
        heap.settle()  # as `mailbridge run` does once started
        asyncio.run(daemon.swap_templates(open_templates(config)))
        gc.collect()
        assert old() is None, "the old templates stayed frozen"
        old = weakref.ref(app.templates._env)
        asyncio.run(daemon.reconfigure(config, open_templates(config)))
        gc.collect()
        assert old() is None, "the old templates stayed frozen"
    finally:
        app.close()


def test_a_parse_worker_starts_with_its_forkservers_heap_frozen() -> None:
    """inbound/worker_preload.py settles the forkserver's heap after preloading, so a
    worker's collections leave the pages it shares with the forkserver alone."""
    worker = ParseWorker()
    try:
        worker.send((gc.get_freeze_count, ()))
        answer = worker.receive(60)
    finally:
        worker.close()
    assert answer is not None
    ok, frozen = answer
    assert ok and frozen > 10_000, frozen


def test_what_is_loaded_is_frozen_and_the_collector_is_as_it_was_after() -> None:
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            gc.unfreeze()
            with heap.loading():
                assert not gc.isenabled()
                node = Node()
                alive = weakref.ref(node)
            assert gc.isenabled() is enabled
            del node
            gc.collect()
            assert alive() is not None, "what was loaded is out of the collector's reach"
            heap.settle()
            assert alive() is None
    finally:
        gc.enable()
        gc.unfreeze()

"""A job's process mark (app/jobs/owners.py): this process is running; a mark whose pid was
reused by a later process, or whose pid is gone, is not; a mark from another host is told apart."""

from __future__ import annotations

import dataclasses

from app.jobs.owners import ProcessMark


def test_this_process_is_running_and_its_mark_round_trips() -> None:
    mark = ProcessMark.current()
    assert mark.on_this_host() and mark.running()
    assert ProcessMark.from_fields({**mark.fields(), "gate": "open"}) == mark


def test_a_reused_pid_or_a_gone_one_is_not_the_process_that_was_marked() -> None:
    mark = ProcessMark.current()
    assert not dataclasses.replace(mark, started=mark.started + "0").running()
    assert not dataclasses.replace(mark, pid=2**22 + 1).running()  # past Linux's pid_max


def test_a_mark_from_elsewhere_or_none_at_all() -> None:
    assert not dataclasses.replace(ProcessMark.current(), host="another-host").on_this_host()
    assert ProcessMark.from_fields({"gate": "open"}) is None
    assert ProcessMark.from_fields({"owner_host": "h", "owner_pid": "x"}) is None

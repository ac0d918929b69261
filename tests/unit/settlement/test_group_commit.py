"""GroupCommit: requests that queue while a group runs go together in the next group; every
caller gets its own result, or its group's exception, and the thread carries on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hub.settlement.service_layer.group_commit import GroupCommit


def test_requests_queued_during_a_group_form_the_next_group_and_each_gets_its_own_result():
    started, release = threading.Event(), threading.Event()
    groups: list[list[int]] = []

    def run_group(items):
        groups.append(list(items))
        if len(groups) == 1:
            started.set()
            release.wait(5)  # hold the first group while the others queue up
        return [item * 10 for item in items]

    commit = GroupCommit(run_group, threads=1, max_group=4)

    async def main():
        first = asyncio.ensure_future(commit.submit(0))
        assert await asyncio.to_thread(started.wait, 5)  # the thread has taken the first item alone
        rest = [asyncio.ensure_future(commit.submit(n)) for n in range(1, 7)]
        await asyncio.sleep(0)  # one turn of the loop: every new task has queued its item
        release.set()
        return await asyncio.gather(first, *rest)

    try:
        results = asyncio.run(main())
    finally:
        commit.close()
    assert results == [n * 10 for n in range(7)]
    assert groups == [[0], [1, 2, 3, 4], [5, 6]]  # arrival order, at most max_group at a time
    assert (commit.groups, commit.items) == (3, 7)


def test_a_failing_group_fails_each_of_its_callers_and_the_next_group_still_runs():
    def run_group(items):
        if "bad" in items:
            raise RuntimeError("the database went away")
        return [item.upper() for item in items]

    commit = GroupCommit(run_group, threads=1)

    async def main():
        with pytest.raises(RuntimeError, match="went away"):
            await commit.submit("bad")
        return await commit.submit("good")

    try:
        assert asyncio.run(main()) == "GOOD"
    finally:
        commit.close()


def test_an_item_that_failed_alone_fails_only_its_own_caller():
    def run_group(items):  # as run_group does after a group's transaction failed: bill by bill
        return [ValueError(f"{item} refused") if item == "bad" else item.upper() for item in items]

    commit = GroupCommit(run_group, threads=1)

    async def main():
        calls = [asyncio.ensure_future(commit.submit(item)) for item in ("a", "bad", "b")]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        a, bad, b = asyncio.run(main())
    finally:
        commit.close()
    assert (a, b) == ("A", "B")
    assert isinstance(bad, ValueError) and str(bad) == "bad refused"

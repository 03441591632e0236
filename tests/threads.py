"""Racing threads: the same work started at the same moment, for the tests of what storage
guarantees under concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def at_once(work: Callable[[int], T], times: int) -> list[T | BaseException]:
    """Run ``work(n)`` in ``times`` threads released together; what each returned or raised,
    in the threads' order."""
    barrier = threading.Barrier(times)
    outcomes: list[T | BaseException] = [RuntimeError("did not finish")] * times

    def run(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = work(n)
        except BaseException as exc:  # handed to the test, which asserts on it
            outcomes[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes

"""The parts of batched local decoding that need no model: stop strings and the model lock."""

from __future__ import annotations

import threading
import time
from typing import Any

from promptopt.llm.base import Priority
from promptopt.llm.local_decode import ModelLock, StopScanner


def feed_all(scanner: StopScanner, pieces: list[str]) -> str:
    text, out = "", []
    for piece in pieces:
        text += piece
        out.append(scanner.feed(text))
        if scanner.stopped:
            break
    else:
        out.append(scanner.feed(text, final=True))
    return "".join(out)


def test_stop_strings_are_cut_even_across_pieces() -> None:
    scanner = StopScanner(["t. P"])
    assert feed_all(scanner, ["Apple", "s are gr", "ea", "t. Pears too."]) == "Apples are grea"
    assert scanner.stopped
    scanner = StopScanner(["###"])
    assert feed_all(scanner, ["no", " stop", " here"]) == "no stop here"
    assert not scanner.stopped


def test_text_is_emitted_as_it_comes_without_stops() -> None:
    scanner = StopScanner(None)
    assert scanner.feed("Hel") == "Hel"
    assert scanner.feed("Hello") == "lo"
    assert scanner.feed("Hello \ufffd") == " "  # half a character waits for the rest
    assert scanner.feed("Hello é") == "é"


def test_callers_waiting_for_the_screen_go_before_background_work() -> None:
    lock = ModelLock()
    lock.acquire()
    order: list[str] = []

    def take(name: str, background: bool) -> None:
        lock.acquire(background=background)
        order.append(name)
        time.sleep(0.01)
        lock.release()

    waiting = threading.Thread(target=take, args=("background", True))
    waiting.start()
    time.sleep(0.05)
    screen = threading.Thread(target=take, args=("screen", False))
    screen.start()
    time.sleep(0.05)
    assert not lock.foreground_waiting() or order == []
    assert lock.foreground_waiting()
    lock.release()
    waiting.join(2)
    screen.join(2)
    assert order == ["screen", "background"]


def test_a_lock_wait_can_time_out() -> None:
    lock = ModelLock()
    lock.acquire()
    assert not lock.acquire(timeout=0.05)
    lock.release()
    assert lock.acquire(timeout=0.05)


def test_a_waiting_background_job_promoted_goes_first() -> None:
    """A pair made ahead that a vote promotes while it waits for the model goes before other
    background work that was waiting longer, and makes running background work step aside."""
    lock = ModelLock()
    lock.acquire()
    order: list[str] = []
    priority = Priority(background=True)

    def take(name: str, background: Any) -> None:
        lock.acquire(background=background)
        order.append(name)
        time.sleep(0.01)
        lock.release()

    other = threading.Thread(target=take, args=("proposal", True))
    other.start()
    time.sleep(0.05)
    pair = threading.Thread(target=take, args=("pair", lambda: priority.background))
    pair.start()
    time.sleep(0.1)
    assert not lock.foreground_waiting()  # still background: nobody waits for it yet
    priority.promote()
    deadline = time.monotonic() + 2
    while not lock.foreground_waiting() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lock.foreground_waiting()  # a running background batch now steps aside for it
    lock.release()
    other.join(2)
    pair.join(2)
    assert order == ["pair", "proposal"]


def test_a_background_waiter_still_waits_for_foreground_work() -> None:
    lock = ModelLock()
    lock.acquire()
    priority = Priority(background=True)
    assert not lock.acquire(background=lambda: priority.background, timeout=0.12)
    lock.release()
    assert lock.acquire(background=lambda: priority.background, timeout=0.12)


def test_pairs_made_ahead_go_before_other_background_work() -> None:
    """Three ranks: the screen, then a pair made ahead of the reader, then proposals and the
    like; a running batch steps aside only for a lower rank than its own."""
    lock = ModelLock()
    lock.acquire()
    order: list[str] = []
    ahead = Priority(background=True, ahead=True)
    assert ahead.level == Priority.AHEAD and ahead.background

    def take(name: str, background: Any) -> None:
        lock.acquire(background=background)
        order.append(name)
        time.sleep(0.01)
        lock.release()

    threads = [threading.Thread(target=take, args=("proposal", True))]
    threads[0].start()
    time.sleep(0.05)
    threads.append(threading.Thread(target=take, args=("pair ahead", lambda: ahead.level)))
    threads[1].start()
    time.sleep(0.1)
    assert lock.waiting_before(2) and not lock.waiting_before(1)
    threads.append(threading.Thread(target=take, args=("screen", False)))
    threads[2].start()
    time.sleep(0.05)
    assert lock.waiting_before(1)
    lock.release()
    for thread in threads:
        thread.join(2)
    assert order == ["screen", "pair ahead", "proposal"]

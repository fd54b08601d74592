"""The small shared helpers: caches, URL checks, problem lists, warn-once, one scrape at a time."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

from llmwatch.core.cache import Expiring, ExpiringMap
from llmwatch.core.checks import Problems, check_url, url_problem
from llmwatch.core.logs import WarnOnce
from llmwatch.core.scrape import ScrapeErrors, one_in_flight
from llmwatch.core.settings import SettingsError
from llmwatch.queueing.config import ConfigError
from llmwatch.tools.stack_config.render import StackConfigError


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_expiring_is_due_until_set_and_again_after_its_seconds():
    clock = Clock()
    cache = Expiring(30, clock)
    assert cache.due()
    cache.set({"a": 1})
    clock.now += 29.9
    assert not cache.due() and cache.value == {"a": 1}
    clock.now += 0.1
    assert cache.due()
    cache.drop()
    assert cache.due() and cache.value is None
    zero = Expiring(0, clock)
    zero.set()
    assert zero.due(), "0 seconds keeps nothing"


def test_expiring_map_keeps_each_key_its_own_time_and_forgets_what_is_gone():
    clock = Clock()
    names = ExpiringMap(60, clock)
    names.set("a", "vllm-a")
    names.set("b", None, seconds=10)  # a stored None is a fresh answer too
    clock.now += 10
    assert names.fresh("a") and not names.fresh("b") and not names.fresh("c")
    assert names["a"] == "vllm-a"
    names.keep(["b"])
    assert not names.fresh("a") and len(names) == 1


@pytest.mark.parametrize("url, problem", [
    ("http://10.0.0.5:8000", None),
    ("https://litellm:4000/", None),
    ("ftp://x", "is not an http(s) base URL"),
    ("http://:8000", "is not an http(s) base URL"),
    ("http://a:99999", "has an invalid port"),
    ("http://a:1/metrics?x=1", "without ?query or #fragment"),
    ("http://a b", "spaces or control characters"),
    ("http://a\n", "spaces or control characters"),
    (42, "is not an http(s) URL"),
])
def test_one_url_rule(url, problem):
    found = url_problem(url)
    assert (found is None) if problem is None else (problem in found), found


def test_check_url_names_where_and_strips_the_slash():
    assert check_url("http://a:1/") == "http://a:1"
    with pytest.raises(ValueError, match=r"^entry 2: 'ftp://x' is not an http\(s\) base URL such as http://h:1$"):
        check_url("ftp://x", "entry 2", example="http://h:1")


@pytest.mark.parametrize("error", [SettingsError, ConfigError, StackConfigError])
def test_every_problem_list_error_is_one_kind(error):
    e = error(["a.b must be a number", "c is missing"])
    assert isinstance(e, Problems) and isinstance(e, ValueError)
    assert e.problems == ["a.b must be a number", "c is missing"] and str(e) == "a.b must be a number; c is missing"


def test_warn_once_per_key_until_cleared(caplog):
    warn = WarnOnce(logging.getLogger("t"))
    with caplog.at_level(logging.WARNING):
        assert warn(("u", "timeout"), "not read", url="u")
        assert not warn(("u", "timeout"), "not read", url="u")
        assert warn(("u", "http_status"), "not read", url="u")
        warn.clear(("u", "timeout"))
        assert warn(("u", "timeout"), "not read", url="u")
    assert [r.url for r in caplog.records] == ["u", "u", "u"]


def waiting_on_the_flight(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked inside ``one_in_flight``'s wait for the scrape in progress."""
    frame = sys._current_frames().get(thread.ident)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return "shared" in names and "wait" in names


def test_concurrent_scrapes_share_the_one_in_flight():
    """Four requests during one slow scrape: the upstream is read once and all four get its answer;
    a request after it ends starts a new scrape."""
    calls, entered, release = [0], threading.Event(), threading.Event()

    def scrape(errors):
        calls[0] += 1
        entered.set()
        release.wait(5)
        return [f"family {calls[0]}"]

    shared = one_in_flight(scrape)
    results = []
    first = threading.Thread(target=lambda: results.append(shared(ScrapeErrors())))
    first.start()
    assert entered.wait(5)
    others = [threading.Thread(target=lambda: results.append(shared(ScrapeErrors()))) for _ in range(3)]
    for t in others:
        t.start()
    while not all(waiting_on_the_flight(t) for t in others):
        time.sleep(0.001)
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert calls[0] == 1
    assert results == [["family 1"]] * 4
    assert shared(ScrapeErrors()) == ["family 2"]


def test_a_failed_scrape_fails_every_request_that_shared_it():
    entered, release = threading.Event(), threading.Event()

    def scrape(errors):
        entered.set()
        release.wait(5)
        raise RuntimeError("upstream exploded")

    shared = one_in_flight(scrape)
    outcomes = []

    def request():
        try:
            shared(ScrapeErrors())
        except RuntimeError as e:
            outcomes.append(str(e))

    threads = [threading.Thread(target=request) for _ in range(3)]
    threads[0].start()
    assert entered.wait(5)
    for t in threads[1:]:
        t.start()
    while not all(waiting_on_the_flight(t) for t in threads[1:]):
        time.sleep(0.001)
    release.set()
    for t in threads:
        t.join(5)
    assert outcomes == ["upstream exploded"] * 3

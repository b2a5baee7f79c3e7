"""kazoo recipe tests against the server at $ZK_HOSTS (e.g. 127.0.0.1:2181).

Run by tests/tests/kazoo.rs with the venv made by tests/setup.sh:
    ZK_HOSTS=127.0.0.1:PORT tests/.venv/bin/python -m pytest -q tests/python/test_recipes.py

Every wait is bounded (WAIT seconds); threads are daemons and every client is stopped at
teardown, so a broken server fails these tests instead of hanging them.
"""

import os
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionClosedError
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock
from kazoo.recipe.queue import LockingQueue, Queue
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

WAIT = 30.0


def wait_for(condition, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def make_client():
    hosts = os.environ["ZK_HOSTS"]
    clients = []

    def make():
        client = KazooClient(hosts=hosts, timeout=10.0)
        client.start(timeout=WAIT)
        clients.append(client)
        return client

    yield make
    for client in clients:
        try:
            client.stop()
            client.close()
        except Exception:  # already stopped by the test
            pass


@pytest.fixture
def base():
    return f"/recipes-{uuid.uuid4().hex[:8]}"


def start_thread(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_lock_mutual_exclusion(make_client, base):
    path = f"{base}/lock"
    inside = []
    max_inside = [0]
    entries = [0]
    guard = threading.Lock()
    errors = []

    def worker(client, name):
        try:
            lock = Lock(client, path, name)
            for _ in range(5):
                assert lock.acquire(timeout=WAIT), f"{name} could not acquire"
                with guard:
                    inside.append(name)
                    max_inside[0] = max(max_inside[0], len(inside))
                    entries[0] += 1
                time.sleep(0.01)
                with guard:
                    inside.remove(name)
                lock.release()
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [start_thread(worker, make_client(), f"c{i}") for i in range(3)]
    for t in threads:
        t.join(WAIT * 3)
        assert not t.is_alive(), "lock worker hung"
    assert errors == []
    assert entries[0] == 15
    assert max_inside[0] == 1, "two holders at once"


def test_lock_is_released_when_holder_session_closes(make_client, base):
    holder_client = make_client()
    waiter_client = make_client()
    holder = Lock(holder_client, f"{base}/lock", "holder")
    waiter = Lock(waiter_client, f"{base}/lock", "waiter")
    assert holder.acquire(timeout=WAIT)
    assert not waiter.acquire(blocking=False)
    got = threading.Event()
    start_thread(lambda: waiter.acquire(timeout=WAIT) and got.set())
    wait_for(lambda: len(waiter.contenders()) == 2, "two contenders")
    assert waiter.contenders() == ["holder", "waiter"]
    holder_client.stop()  # closes the session: its ephemeral lock node goes
    assert got.wait(WAIT), "waiter never got the lock"
    assert waiter.is_acquired
    waiter.release()


def test_election_leader_and_failover(make_client, base):
    path = f"{base}/election"
    leaders = []
    leader_events = {name: threading.Event() for name in ("a", "b")}
    release = {name: threading.Event() for name in ("a", "b")}

    def lead(name):
        leaders.append(name)
        leader_events[name].set()
        release[name].wait(WAIT * 2)

    def run(election, name):
        try:
            election.run(lead, name)
        except ConnectionClosedError:
            pass  # a's client was stopped on purpose while it led

    client_a = make_client()
    election_a = Election(client_a, path, "a")
    start_thread(run, election_a, "a")
    assert leader_events["a"].wait(WAIT), "a never led"
    client_b = make_client()
    election_b = Election(client_b, path, "b")
    start_thread(run, election_b, "b")
    wait_for(lambda: len(election_b.contenders()) == 2, "two contenders")
    assert election_b.contenders() == ["a", "b"]
    assert not leader_events["b"].is_set()
    client_a.stop()  # leader's session closes: b takes over
    assert leader_events["b"].wait(WAIT), "b never took over"
    assert leaders == ["a", "b"]
    release["a"].set()
    release["b"].set()


def test_queue_and_locking_queue(make_client, base):
    producer = make_client()
    consumer = make_client()
    queue = Queue(producer, f"{base}/queue")
    for item in (b"one", b"two", b"three"):
        queue.put(item)
    assert len(queue) == 3
    consumer_queue = Queue(consumer, f"{base}/queue")
    assert [consumer_queue.get() for _ in range(3)] == [b"one", b"two", b"three"]
    assert consumer_queue.get() is None

    locking = LockingQueue(producer, f"{base}/lqueue")
    locking.put(b"low", priority=100)
    locking.put(b"high", priority=1)
    other = LockingQueue(consumer, f"{base}/lqueue")
    assert other.get(timeout=WAIT) == b"high"
    assert other.consume()
    assert other.get(timeout=WAIT) == b"low"
    assert other.consume()
    assert len(other) == 0


def test_barrier_and_double_barrier(make_client, base):
    client = make_client()
    barrier = Barrier(client, f"{base}/barrier")
    barrier.create()
    passed = threading.Event()
    start_thread(lambda: Barrier(make_client(), f"{base}/barrier").wait(WAIT) and passed.set())
    assert not passed.wait(0.5), "barrier let a waiter through while it exists"
    barrier.remove()
    assert passed.wait(WAIT), "waiter not released by remove()"

    entered = []
    left = []

    def participant(name):
        double = DoubleBarrier(make_client(), f"{base}/double", 2, identifier=name)
        double.enter()
        entered.append(name)
        double.leave()
        left.append(name)

    first = start_thread(participant, "p1")
    time.sleep(0.3)
    assert entered == [], "entered before the second participant arrived"
    second = start_thread(participant, "p2")
    for t in (first, second):
        t.join(WAIT)
        assert not t.is_alive(), "double barrier participant hung"
    assert sorted(entered) == ["p1", "p2"]
    assert sorted(left) == ["p1", "p2"]


def test_data_watch_and_children_watch(make_client, base):
    watcher = make_client()
    writer = make_client()
    path = f"{base}/dw"
    writer.ensure_path(base)
    seen = []

    @DataWatch(watcher, path)
    def on_data(data, stat):
        seen.append(None if stat is None else (data, stat.version))

    wait_for(lambda: seen == [None], "initial DataWatch call for a missing node")
    writer.create(path, b"v0")
    wait_for(lambda: seen[-1:] == [(b"v0", 0)], "DataWatch sees the create")
    writer.set(path, b"v1")
    wait_for(lambda: seen[-1:] == [(b"v1", 1)], "DataWatch sees the set")
    writer.delete(path)
    wait_for(lambda: seen[-1:] == [None], "DataWatch sees the delete")

    lists = []
    parent = f"{base}/cw"
    writer.ensure_path(parent)

    @ChildrenWatch(watcher, parent)
    def on_children(children):
        lists.append(sorted(children))

    wait_for(lambda: lists == [[]], "initial ChildrenWatch call")
    writer.create(f"{parent}/a")
    wait_for(lambda: lists[-1:] == [["a"]], "ChildrenWatch sees a")
    writer.create(f"{parent}/b", ephemeral=True)
    wait_for(lambda: lists[-1:] == [["a", "b"]], "ChildrenWatch sees b")
    writer.stop()  # the ephemeral b goes with the session
    wait_for(lambda: lists[-1:] == [["a"]], "ChildrenWatch sees b vanish")


def test_counter_and_transaction(make_client, base):
    a = make_client()
    b = make_client()
    counter_a = Counter(a, f"{base}/counter")
    counter_b = Counter(b, f"{base}/counter")
    for _ in range(10):
        counter_a += 1
        counter_b += 2
    assert counter_a.value == 30

    a.ensure_path(f"{base}/tx")
    tx = a.transaction()
    tx.create(f"{base}/tx/x", b"1")
    tx.check(f"{base}/tx", 0)
    tx.set_data(f"{base}/tx", b"parent")
    results = tx.commit()
    assert results[0] == f"{base}/tx/x"
    assert results[1] is True
    assert results[2].version == 1

    failing = a.transaction()
    failing.create(f"{base}/tx/y", b"")
    failing.check(f"{base}/tx", 0)  # stale: fails the whole transaction
    results = failing.commit()
    assert type(results[1]).__name__ == "BadVersionError"
    assert b.exists(f"{base}/tx/y") is None

"""Celery 5 against the broker: a real worker process (solo pool) runs the tasks of
celery_app.py, sent through the broker, with results coming back through it too
(rpc:// backend); control commands and events go through the worker's pidbox
and the celeryev exchange.

Beyond plain publish/consume, this exercises what Celery declares on its own:
the celery.pidbox fanout and reply.celery.pidbox exchanges, auto-delete queues
with x-expires and x-message-ttl arguments, and the celeryev topic exchange.
"""

import os
import socket
import subprocess
import sys
import time
import uuid

import celery
import pytest
from celery.exceptions import TaskRevokedError

from celery_app import QUEUE, add, app, fail, multiply, succeed_after
from support import TIMEOUT

# The worker imports Celery and connects, then waits for a second for other workers to sync with (mingle).
WORKER_START_TIMEOUT = 20.0
# Warm shutdown: the solo pool finishes its current task, then the worker closes its connections.
WORKER_STOP_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """A worker consuming this run's task queue; yields its node name.

    The worker is stopped by its PID, and the task queue and exchange deleted,
    however the module's tests end.
    """
    node = f"interop-{uuid.uuid4().hex[:12]}@localhost"
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo", "--concurrency=1"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*command, "--hostname", node, "--loglevel=INFO"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
    try:
        wait_until_ready(process, node, log_path)
        yield node
    finally:
        stop(process)
        delete_task_queue()
        app.close()


def wait_until_ready(process: subprocess.Popen, node: str, log_path):
    """Pings the worker through its pidbox until it answers, failing (with its log) if it exits or stays silent."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while not app.control.ping(destination=[node], timeout=0.5):
        if process.poll() is not None:
            pytest.fail(f"celery worker exited with {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"celery worker did not answer a ping within {WORKER_START_TIMEOUT}s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen):
    process.terminate()  # SIGTERM: warm shutdown
    try:
        process.wait(WORKER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def delete_task_queue():
    """The task queue is durable and outlives the worker: delete it and its exchange of the same name."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        channel.queue_delete(QUEUE)
        channel.exchange_delete(QUEUE)


def test_task_result_comes_back(worker):
    assert add.delay(2, 3).get(timeout=TIMEOUT) == 5


def test_chain_passes_each_result_on(worker):
    assert (add.s(1, 2) | add.s(3) | multiply.s(4))().get(timeout=TIMEOUT) == 24


def test_group_gathers_results(worker):
    assert celery.group(add.s(i, i) for i in range(4))().get(timeout=TIMEOUT) == [0, 2, 4, 6]


def test_retried_task_is_republished_until_it_succeeds(worker):
    result = succeed_after.delay(2)
    assert result.get(timeout=TIMEOUT) == 2
    assert result.state == "SUCCESS"


def test_failing_task_raises_its_exception_in_the_caller(worker):
    result = fail.delay("boom")
    with pytest.raises(ValueError, match="^boom$"):
        result.get(timeout=TIMEOUT)
    assert result.state == "FAILURE"


def test_revoked_task_is_not_run(worker):
    # Revoking by id before sending makes the outcome independent of timing:
    # the worker has acknowledged the revocation before the task can reach it.
    task_id = str(uuid.uuid4())
    replies = app.control.revoke(task_id, destination=[worker], reply=True, timeout=TIMEOUT)
    [(node, reply)] = [item for answer in replies for item in answer.items()]
    assert node == worker and task_id in reply["ok"]
    result = add.apply_async((1, 1), task_id=task_id)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=TIMEOUT)
    assert result.state == "REVOKED"


def test_worker_reports_the_queue_it_consumes(worker):
    replies = app.control.inspect(destination=[worker], timeout=TIMEOUT).active_queues()
    [queue] = replies[worker]
    assert (queue["name"], queue["exchange"]["name"], queue["routing_key"]) == (QUEUE, QUEUE, QUEUE)


def test_task_events_reach_a_monitor(worker):
    events = []
    with app.connection_for_read() as connection:
        # The receiver's queue (x-message-ttl, x-expires) is bound to celeryev before the task is sent.
        receiver = app.events.Receiver(connection, handlers={"*": events.append})
        with receiver.consumer_context(wakeup=False) as (consuming, _channel, _consumers):
            result = add.delay(20, 22)
            assert result.get(timeout=TIMEOUT) == 42

            def task_events():
                return [(e["type"], e["hostname"]) for e in events if e.get("uuid") == result.id]

            deadline = time.monotonic() + TIMEOUT
            while ("task-succeeded", worker) not in task_events() and time.monotonic() < deadline:
                try:
                    consuming.drain_events(timeout=deadline - time.monotonic())
                except socket.timeout:
                    pass
    assert task_events() == [("task-received", worker), ("task-started", worker), ("task-succeeded", worker)]

"""The RabbitMQ tutorials (interop/python/tutorials/) run as separate processes against the broker.

Each consumer is started first and the producer only once the consumer has
printed its ready line, so no message is published before anyone listens.
"""

import os
import pathlib
import queue
import subprocess
import sys
import threading

import pika
import pytest

import support

TUTORIALS = pathlib.Path(__file__).parent / "tutorials"
TIMEOUT = 20  # seconds for a whole script run; the scripts' own consumer timeout is shorter

# Entities with the fixed names the tutorials use; removed around each test so
# leftovers from an interrupted run (or another user of a shared broker) cannot interfere.
QUEUES = ["hello", "task_queue", "rpc_queue"]
EXCHANGES = ["logs", "direct_logs", "topic_logs"]


def script_env(expected_messages=None):
    env = dict(os.environ, AMQP_URL=support.amqp_url(), PYTHONUNBUFFERED="1", CONSUMER_TIMEOUT="15")
    if expected_messages is not None:
        env["EXPECTED_MESSAGES"] = str(expected_messages)
    return env


class Consumer:
    """A tutorial consumer process whose output lines are collected as they appear."""

    def __init__(self, script, *args, expected_messages):
        self.process = subprocess.Popen(
            [sys.executable, str(TUTORIALS / script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=script_env(expected_messages),
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self, ready_line):
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no ready line {ready_line!r} within {TIMEOUT}s; output so far: {seen}")
            if line is None:
                pytest.fail(f"consumer exited before its ready line; output: {seen}")
            seen.append(line)
            if line == ready_line:
                return

    def finish(self):
        """Waits for the consumer to stop by itself; returns its exit status and remaining output."""
        try:
            status = self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("consumer did not stop by itself")
        output = []
        while (line := self.lines.get(timeout=TIMEOUT)) is not None:
            output.append(line)
        return status, output


@pytest.fixture
def consumers():
    started = []

    def start(script, *args, ready=" [*] Waiting for logs. To exit press CTRL+C", expected_messages=1):
        consumer = Consumer(script, *args, expected_messages=expected_messages)
        started.append(consumer)
        consumer.wait_ready(ready)
        return consumer

    yield start
    for consumer in started:
        if consumer.process.poll() is None:
            consumer.process.kill()
            consumer.process.wait()


def run(script, *args):
    """Runs a producer to completion and returns its output lines."""
    result = subprocess.run(
        [sys.executable, str(TUTORIALS / script), *args],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture(autouse=True)
def fresh_tutorial_entities():
    def delete_all():
        with pika.BlockingConnection(support.parameters()) as connection:
            channel = connection.channel()
            for name in QUEUES:
                channel.queue_delete(name)
            for name in EXCHANGES:
                channel.exchange_delete(name)

    delete_all()
    yield
    delete_all()


def test_hello_world(consumers):
    receiver = consumers("receive.py", ready=" [*] Waiting for messages. To exit press CTRL+C")
    assert run("send.py") == [" [x] Sent 'Hello World!'"]
    assert receiver.finish() == (0, [" [x] Received b'Hello World!'"])


def test_seed_example():
    assert run("seed_example.py") == [" [x] Received Hello from the seed example!"]


def test_work_queues(consumers):
    worker = consumers("worker.py", ready=" [*] Waiting for messages. To exit press CTRL+C", expected_messages=3)
    # Each "." in a task is a second of simulated work in the worker; these have none.
    tasks = ["First task", "Second task", "Third task"]
    for task in tasks:
        assert run("new_task.py", *task.split()) == [f" [x] Sent {task}"]
    status, output = worker.finish()
    assert status == 0
    assert output == [line for task in tasks for line in (f" [x] Received {task}", " [x] Done")]
    # Every task was acknowledged, and the durable queue outlives the worker.
    with pika.BlockingConnection(support.parameters()) as connection:
        assert support.ready_count(connection.channel(), "task_queue") == 0


def test_publish_subscribe(consumers):
    receivers = [consumers("receive_logs.py") for _ in range(2)]
    assert run("emit_log.py", "info:", "disk", "is", "fine") == [" [x] Sent info: disk is fine"]
    for receiver in receivers:
        assert receiver.finish() == (0, [" [x] b'info: disk is fine'"])


def test_routing(consumers):
    problems = consumers("receive_logs_direct.py", "warning", "error", expected_messages=2)
    everything = consumers("receive_logs_direct.py", "info", "warning", "error", expected_messages=3)
    for severity, message in [("error", "Run. Run. Or it will explode."), ("info", "All good"), ("warning", "Low disk")]:
        assert run("emit_log_direct.py", severity, message) == [f" [x] Sent {severity}:{message}"]
    assert problems.finish() == (0, [" [x] error:b'Run. Run. Or it will explode.'", " [x] warning:b'Low disk'"])
    assert everything.finish() == (
        0,
        [" [x] error:b'Run. Run. Or it will explode.'", " [x] info:b'All good'", " [x] warning:b'Low disk'"],
    )


def test_routing_needs_a_severity():
    result = subprocess.run(
        [sys.executable, str(TUTORIALS / "receive_logs_direct.py")],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 1 and result.stderr.startswith("Usage:")


def test_topics(consumers):
    kernel = consumers("receive_logs_topic.py", "kern.*", expected_messages=2)
    critical = consumers("receive_logs_topic.py", "*.critical", expected_messages=2)
    everything = consumers("receive_logs_topic.py", "#", expected_messages=4)
    for key, message in [
        ("kern.critical", "A critical kernel error"),
        ("kern.info", "Kernel booted"),
        ("app.critical", "App down"),
        ("app.info.detail", "Three words"),
    ]:
        assert run("emit_log_topic.py", key, message) == [f" [x] Sent {key}:{message}"]
    assert kernel.finish() == (0, [" [x] kern.critical:b'A critical kernel error'", " [x] kern.info:b'Kernel booted'"])
    assert critical.finish() == (0, [" [x] kern.critical:b'A critical kernel error'", " [x] app.critical:b'App down'"])
    status, output = everything.finish()
    assert status == 0 and len(output) == 4


def test_rpc(consumers):
    server = consumers("rpc_server.py", ready=" [x] Awaiting RPC requests", expected_messages=2)
    assert run("rpc_client.py") == [" [x] Requesting fib(30)", " [.] Got 832040"]
    assert run("rpc_client.py", "10") == [" [x] Requesting fib(10)", " [.] Got 55"]
    assert server.finish() == (0, [" [.] fib(30)", " [.] fib(10)"])

"""The Celery application of test_celery.py, imported both by the tests (to send
tasks) and by the worker they start (`celery -A celery_app worker`).

The broker is AMQP_URL and results come back through it too (the rpc://
backend). Tasks travel on a queue, and an exchange of the same name, that no
other run uses: the name is made on first import and handed to the worker in
the environment it inherits, so runs sharing a broker never take each other's
tasks.
"""

import os

from celery import Celery

import support

QUEUE = os.environ.setdefault("INTEROP_CELERY_QUEUE", support.unique("celery"))

app = Celery("interop", broker=support.amqp_url(), backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    # The rpc:// backend declares a result queue (x-expires = result_expires) in every
    # process that sends a task; the worker's own, declared when it sends the next task
    # of a chain or a retry, is never consumed, so let the broker drop it a minute after
    # the run rather than the default day later.
    result_expires=60,
    # The worker sends task events (to the celeryev exchange) as a monitor would ask it to.
    worker_send_task_events=True,
)


@app.task
def add(x, y):
    return x + y


@app.task
def multiply(x, y):
    return x * y


@app.task
def fail(message):
    raise ValueError(message)


@app.task(bind=True, max_retries=3)
def succeed_after(self, failures):
    """Fails `failures` times, each time asking Celery to retry (a republish through the broker)."""
    if self.request.retries < failures:
        raise self.retry(countdown=0)
    return self.request.retries

#!/usr/bin/env python
"""Tutorial 6, "RPC": request fib(n) from the RPC server and wait for the matching reply."""
import os
import sys
import time
import uuid

import pika


class FibonacciRpcClient(object):

    def __init__(self):
        # The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
        url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
        self.connection = pika.BlockingConnection(pika.URLParameters(url))

        self.channel = self.connection.channel()

        result = self.channel.queue_declare(queue='', exclusive=True)
        self.callback_queue = result.method.queue

        self.channel.basic_consume(
            queue=self.callback_queue,
            on_message_callback=self.on_response,
            auto_ack=True)

        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n, timeout):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange='',
            routing_key='rpc_queue',
            properties=pika.BasicProperties(
                reply_to=self.callback_queue,
                correlation_id=self.corr_id,
            ),
            body=str(n))
        # Not in the tutorial: give up after timeout seconds instead of waiting forever.
        deadline = time.monotonic() + timeout
        while self.response is None and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=deadline - time.monotonic())
        return None if self.response is None else int(self.response)


n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
fibonacci_rpc = FibonacciRpcClient()

print(f" [x] Requesting fib({n})")
response = fibonacci_rpc.call(n, timeout=float(os.environ.get('CONSUMER_TIMEOUT', '30')))
print(f" [.] Got {response}")
fibonacci_rpc.connection.close()
sys.exit(0 if response is not None else 1)

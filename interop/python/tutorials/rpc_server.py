#!/usr/bin/env python
"""Tutorial 6, "RPC": answer Fibonacci requests from 'rpc_queue' on each request's reply_to queue."""
import os
import sys

import pika

# The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.queue_declare(queue='rpc_queue')


def fib(n):
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fib(n - 1) + fib(n - 2)


# Not in the tutorial: stop after EXPECTED_MESSAGES requests, or after
# CONSUMER_TIMEOUT seconds, so that the script ends on its own.
expected = int(os.environ.get('EXPECTED_MESSAGES', '1'))
served = 0
connection.call_later(float(os.environ.get('CONSUMER_TIMEOUT', '30')), channel.stop_consuming)


def on_request(ch, method, props, body):
    global served
    n = int(body)

    print(f" [.] fib({n})")
    response = fib(n)

    ch.basic_publish(exchange='',
                     routing_key=props.reply_to,
                     properties=pika.BasicProperties(correlation_id=props.correlation_id),
                     body=str(response))
    ch.basic_ack(delivery_tag=method.delivery_tag)
    served += 1
    if served == expected:
        ch.stop_consuming()


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue='rpc_queue', on_message_callback=on_request)

print(" [x] Awaiting RPC requests")
channel.start_consuming()
connection.close()
sys.exit(0 if served == expected else 1)

#!/usr/bin/env python
"""Tutorial 4, "Routing": print log messages of the severities given as arguments."""
import os
import sys

import pika
from pika.exchange_type import ExchangeType

# The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.exchange_declare(exchange='direct_logs', exchange_type=ExchangeType.direct)

result = channel.queue_declare(queue='', exclusive=True)
queue_name = result.method.queue

severities = sys.argv[1:]
if not severities:
    sys.stderr.write("Usage: %s [info] [warning] [error]\n" % sys.argv[0])
    sys.exit(1)

for severity in severities:
    channel.queue_bind(exchange='direct_logs', queue=queue_name, routing_key=severity)

# Not in the tutorial: stop after EXPECTED_MESSAGES messages, or after
# CONSUMER_TIMEOUT seconds, so that the script ends on its own.
expected = int(os.environ.get('EXPECTED_MESSAGES', '1'))
received = 0
connection.call_later(float(os.environ.get('CONSUMER_TIMEOUT', '30')), channel.stop_consuming)


def callback(ch, method, properties, body):
    global received
    print(f" [x] {method.routing_key}:{body}")
    received += 1
    if received == expected:
        ch.stop_consuming()


print(' [*] Waiting for logs. To exit press CTRL+C')
channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)

channel.start_consuming()
connection.close()
sys.exit(0 if received == expected else 1)

#!/usr/bin/env python
"""Tutorial 4, "Routing": publish a log message with its severity as routing key."""
import os
import sys

import pika
from pika.exchange_type import ExchangeType

# The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.exchange_declare(exchange='direct_logs', exchange_type=ExchangeType.direct)

severity = sys.argv[1] if len(sys.argv) > 1 else 'info'
message = ' '.join(sys.argv[2:]) or 'Hello World!'
channel.basic_publish(exchange='direct_logs', routing_key=severity, body=message)
print(f" [x] Sent {severity}:{message}")
connection.close()

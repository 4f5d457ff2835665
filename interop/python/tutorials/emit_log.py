#!/usr/bin/env python
"""Tutorial 3, "Publish/Subscribe": broadcast a log message on the 'logs' fanout exchange."""
import os
import sys

import pika
from pika.exchange_type import ExchangeType

# The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.exchange_declare(exchange='logs', exchange_type=ExchangeType.fanout)

message = ' '.join(sys.argv[1:]) or "info: Hello World!"
channel.basic_publish(exchange='logs', routing_key='', body=message)
print(f" [x] Sent {message}")
connection.close()

#!/usr/bin/env python
"""Tutorial 1, "Hello World!": send one message to the 'hello' queue."""
import os

import pika

# The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.queue_declare(queue='hello')

channel.basic_publish(exchange='', routing_key='hello', body='Hello World!')
print(" [x] Sent 'Hello World!'")
connection.close()

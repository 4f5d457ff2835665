#!/usr/bin/env python
"""Tutorial 2, "Work queues": queue a task (each '.' in it is a second of work)."""
import os
import sys

import pika

# The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.queue_declare(queue='task_queue', durable=True)

message = ' '.join(sys.argv[1:]) or 'Hello World!'
channel.basic_publish(
    exchange='',
    routing_key='task_queue',
    body=message,
    properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
)
print(f" [x] Sent {message}")
connection.close()

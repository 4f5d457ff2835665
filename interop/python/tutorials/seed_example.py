#!/usr/bin/env python
"""The seed example: declare 'hello', publish to it and consume the message back, all in one script."""
import os

import pika

# The broker comes from AMQP_URL; the pika calls below are the seed example's, unchanged.
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.queue_declare('hello')
channel.basic_publish(exchange='', routing_key='hello', body=b'Hello from the seed example!')


def on_message(ch, method, properties, body):
    print(f" [x] Received {body.decode()}")
    ch.stop_consuming()


channel.basic_consume(queue='hello', on_message_callback=on_message, auto_ack=True)
# Not in the seed example: a bound on the wait, so the script always ends.
connection.call_later(30, channel.stop_consuming)
channel.start_consuming()
connection.close()

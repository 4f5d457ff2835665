#!/usr/bin/env python
"""Tutorial 2, "Work queues": take tasks one at a time and acknowledge each when done."""
import os
import sys
import time

import pika

# The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

channel.queue_declare(queue='task_queue', durable=True)
print(' [*] Waiting for messages. To exit press CTRL+C')

# Not in the tutorial: stop after EXPECTED_MESSAGES tasks, or after
# CONSUMER_TIMEOUT seconds, so that the script ends on its own.
expected = int(os.environ.get('EXPECTED_MESSAGES', '1'))
done = 0
connection.call_later(float(os.environ.get('CONSUMER_TIMEOUT', '30')), channel.stop_consuming)


def callback(ch, method, properties, body):
    global done
    print(f" [x] Received {body.decode()}")
    time.sleep(body.count(b'.'))  # the tutorial's simulated work
    print(" [x] Done")
    ch.basic_ack(delivery_tag=method.delivery_tag)
    done += 1
    if done == expected:
        ch.stop_consuming()


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue='task_queue', on_message_callback=callback)

channel.start_consuming()
connection.close()
sys.exit(0 if done == expected else 1)

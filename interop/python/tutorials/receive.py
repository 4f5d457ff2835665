#!/usr/bin/env python
"""Tutorial 1, "Hello World!": print messages arriving on the 'hello' queue."""
import os
import sys

import pika


def main():
    # The broker comes from AMQP_URL instead of the tutorial's hard-coded localhost.
    url = os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F')
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()

    channel.queue_declare(queue='hello')

    # Not in the tutorial: stop after EXPECTED_MESSAGES messages, or after
    # CONSUMER_TIMEOUT seconds, so that the script ends on its own.
    expected = int(os.environ.get('EXPECTED_MESSAGES', '1'))
    received = 0
    connection.call_later(float(os.environ.get('CONSUMER_TIMEOUT', '30')), channel.stop_consuming)

    def callback(ch, method, properties, body):
        nonlocal received
        print(f" [x] Received {body}")
        received += 1
        if received == expected:
            ch.stop_consuming()

    channel.basic_consume(queue='hello', on_message_callback=callback, auto_ack=True)

    print(' [*] Waiting for messages. To exit press CTRL+C')
    channel.start_consuming()
    connection.close()
    return received == expected


if __name__ == '__main__':
    try:
        sys.exit(0 if main() else 1)
    except KeyboardInterrupt:
        print('Interrupted')
        sys.exit(0)

"""Holds one AMQP connection open for the rabbitmqadmin suite, with only the
standard library: logs in (PLAIN), opens the vhost and a channel, prints
READY, then waits for the broker's connection.close and prints
"CLOSED <code> <text>" (or "EOF" if the socket just ends).

    python3 amqp_holder.py amqp://user:pass@host:port/vhost
"""

import socket
import struct
import sys
from urllib.parse import unquote, urlparse


def short_string(text):
    data = text.encode()
    return struct.pack("B", len(data)) + data


def long_string(data):
    return struct.pack(">I", len(data)) + data


def method_frame(channel, class_id, method_id, arguments):
    payload = struct.pack(">HH", class_id, method_id) + arguments
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def read_frame(sock):
    header = read_exactly(sock, 7)
    if header is None:
        return None
    kind, channel, size = struct.unpack(">BHI", header)
    payload = read_exactly(sock, size + 1)[:-1]
    return kind, channel, payload


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_method(sock):
    """The next method frame as (class, method, arguments), skipping heartbeats."""
    while True:
        frame = read_frame(sock)
        if frame is None:
            return None
        kind, _, payload = frame
        if kind == 1:
            class_id, method_id = struct.unpack(">HH", payload[:4])
            return class_id, method_id, payload[4:]


def main():
    url = urlparse(sys.argv[1])
    vhost = unquote(url.path[1:]) if len(url.path) > 1 else "/"
    sock = socket.create_connection((url.hostname, url.port or 5672), timeout=60)
    sock.sendall(b"AMQP\x00\x00\x09\x01")
    read_method(sock)  # connection.start
    properties = short_string("connection_name") + b"S" + long_string(b"admin-suite")
    response = b"\x00" + unquote(url.username).encode() + b"\x00" + unquote(url.password).encode()
    start_ok = (
        long_string(properties) + short_string("PLAIN") + long_string(response) + short_string("en_US")
    )
    sock.sendall(method_frame(0, 10, 11, start_ok))
    _, _, tune = read_method(sock)
    channel_max, frame_max, _ = struct.unpack(">HIH", tune[:8])
    sock.sendall(method_frame(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0)))
    sock.sendall(method_frame(0, 10, 40, short_string(vhost) + short_string("") + b"\x00"))
    read_method(sock)  # connection.open-ok
    sock.sendall(method_frame(1, 20, 10, short_string("")))
    read_method(sock)  # channel.open-ok
    print("READY", flush=True)
    while True:
        method = read_method(sock)
        if method is None:
            print("EOF", flush=True)
            return
        class_id, method_id, arguments = method
        if (class_id, method_id) == (10, 50):
            code = struct.unpack(">H", arguments[:2])[0]
            length = arguments[2]
            text = arguments[3 : 3 + length].decode()
            sock.sendall(method_frame(0, 10, 51, b""))
            print(f"CLOSED {code} {text}", flush=True)
            return


if __name__ == "__main__":
    main()

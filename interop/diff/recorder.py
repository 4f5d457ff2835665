"""A transparent TCP proxy in front of a broker that records every frame of every connection.

Bytes are forwarded unchanged in both directions, and also split into frames
and appended to a JSON-lines recording. Each client connection is attributed,
when it is accepted, to the test named in a file that the pytest plugin
(plugin/interop_diff_plugin.py) writes while a test runs and removes after it:
tests run one after another, so every connection a test opens, including
those of the processes it starts, lands under that test.

Recording lines ("from" is "broker" or "client"; payloads in base64):
  {"event": "open", "conn": 3, "test": "test_x.py::test_y"}
  {"event": "frame", "conn": 3, "from": "broker", "type": 1, "channel": 0, "payload": "..."}
  {"event": "protocol-header", "conn": 3, "from": "client", "payload": "..."}
  {"event": "unparsed", "conn": 3, "from": "broker", "payload": "..."}  bytes that are not frames, and all after them
  {"event": "eof", "conn": 3, "from": "client"}                        that side closed (or reset) its socket
  {"event": "unreachable", "conn": 3}                                  the broker refused the connection
"""

import base64
import functools
import json
import pathlib
import socket
import struct
import threading
import time

from amqp_frames import FRAME_END

FRAME_HEADER = struct.Struct(">BHI")  # type, channel, payload size
PROTOCOL_HEADER_SIZE = 8  # b"AMQP" and four version octets
OUTSIDE_TESTS = "(outside any test)"  # where connections go while the current-test file is absent


class FrameSplitter:
    """Splits one direction's byte stream into recording events as the bytes arrive."""

    def __init__(self):
        self._buffer = b""
        self._started = False
        self._broken = False

    def feed(self, data: bytes) -> list[tuple[str, bytes, dict]]:
        """(event, payload, extra fields) for every whole frame now available."""
        if self._broken:
            return [("unparsed", data, {})]
        self._buffer += data
        events = []
        if not self._started:
            # A client starts with a protocol header; a broker sends one only to refuse the client's.
            if self._buffer[:1] == b"A":
                if len(self._buffer) < PROTOCOL_HEADER_SIZE:
                    return events
                events.append(("protocol-header", self._buffer[:PROTOCOL_HEADER_SIZE], {}))
                self._buffer = self._buffer[PROTOCOL_HEADER_SIZE:]
            self._started = True
        while len(self._buffer) >= FRAME_HEADER.size:
            frame_type, channel, size = FRAME_HEADER.unpack_from(self._buffer)
            end = FRAME_HEADER.size + size
            if len(self._buffer) <= end:
                break
            if self._buffer[end] != FRAME_END:
                self._broken = True
                events.append(("unparsed", self._buffer, {}))
                self._buffer = b""
                break
            events.append(("frame", self._buffer[FRAME_HEADER.size:end], {"type": frame_type, "channel": channel}))
            self._buffer = self._buffer[end + 1:]
        return events


class Recorder:
    def __init__(self, upstream: tuple[str, int], recording: pathlib.Path, current_test: pathlib.Path):
        self._upstream = upstream
        self._current_test = current_test
        self._log = recording.open("w")
        self._lock = threading.Lock()
        self._connections = 0
        self._pumps: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def stop(self, timeout: float = 10.0):
        """Stops accepting, waits (bounded) for open connections to end, and closes the recording."""
        # shutdown() wakes the accept() blocked in the other thread; close() alone would not.
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join()
        deadline = time.monotonic() + timeout
        for pump in self._pumps:
            pump.join(max(0.0, deadline - time.monotonic()))
        # A connection still open now belongs to a client that is gone: cut it.
        _cut(*self._sockets)
        with self._lock:
            self._log.close()

    def _running_test(self) -> str:
        try:
            return self._current_test.read_text().strip()
        except FileNotFoundError:
            return OUTSIDE_TESTS

    def _record(self, event: str, conn: int, payload: bytes | None = None, **fields):
        line = {"event": event, "conn": conn, **fields}
        if payload is not None:
            line["payload"] = base64.b64encode(payload).decode("ascii")
        with self._lock:
            self._log.write(json.dumps(line) + "\n")
            self._log.flush()

    def _accept_loop(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stop() shut the listener down
            self._connections += 1
            conn = self._connections
            self._record("open", conn, test=self._running_test())
            try:
                server = socket.create_connection(self._upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                self._record("unreachable", conn)
                client.close()
                continue
            self._sockets += [client, server]
            # Once both directions have ended, both sockets close.
            done = threading.Barrier(2, action=functools.partial(_cut, client, server))
            for source, sink, side in ((client, server, "client"), (server, client, "broker")):
                pump = threading.Thread(target=self._pump, args=(conn, source, sink, side, done), daemon=True)
                self._pumps.append(pump)
                pump.start()

    def _pump(self, conn, source, sink, side, done):
        """Copies source to sink until source closes, recording what side sent."""
        frames = FrameSplitter()
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""  # a reset counts as a close
            if not data:
                self._record("eof", conn, **{"from": side})
                break
            try:
                sink.sendall(data)
            except OSError:
                break  # the other side is gone; its own pump records that
            for event, payload, fields in frames.feed(data):
                self._record(event, conn, payload, **{"from": side}, **fields)
        # Pass the close on (half-close), so the other side sees what a direct peer would have seen.
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        done.wait()


def _cut(*sockets: socket.socket):
    """Closes sockets, waking any thread blocked reading them (close() alone would not)."""
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more
        sock.close()

"""Decodes AMQP 0-9-1 frames as a broker sends them, keeping every detail a client can observe.

A client library would turn field-table values into its own types and lose
the wire type (a long and a short integer both become an int); here every
value keeps its type tag, because a client in another language sees it.
Only the standard library is used, so recordings can be compared anywhere.
"""

import decimal
import struct

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE

# Argument types of the AMQP 0-9-1 methods (RabbitMQ's edition of the spec).
OCTET, SHORT, LONG, LONGLONG, SHORTSTR, LONGSTR, BIT, TABLE, TIMESTAMP = (
    "octet", "short", "long", "longlong", "shortstr", "longstr", "bit", "table", "timestamp"
)


def _args(*pairs):
    return tuple(pair.split(":") for pair in pairs)


_CLOSE = _args("reply_code:short", "reply_text:shortstr", "class_id:short", "method_id:short")
_EXCHANGE_BIND = _args(
    "ticket:short", "destination:shortstr", "source:shortstr", "routing_key:shortstr", "nowait:bit", "arguments:table"
)

# (class id, method id) -> (name, arguments); client-only methods are listed too,
# so that a broker sending one by mistake is still shown readably.
METHODS = {
    (10, 10): ("connection.start", _args("version_major:octet", "version_minor:octet", "server_properties:table",
                                         "mechanisms:longstr", "locales:longstr")),
    (10, 11): ("connection.start-ok", _args("client_properties:table", "mechanism:shortstr", "response:longstr",
                                            "locale:shortstr")),
    (10, 20): ("connection.secure", _args("challenge:longstr")),
    (10, 21): ("connection.secure-ok", _args("response:longstr")),
    (10, 30): ("connection.tune", _args("channel_max:short", "frame_max:long", "heartbeat:short")),
    (10, 31): ("connection.tune-ok", _args("channel_max:short", "frame_max:long", "heartbeat:short")),
    (10, 40): ("connection.open", _args("virtual_host:shortstr", "capabilities:shortstr", "insist:bit")),
    (10, 41): ("connection.open-ok", _args("known_hosts:shortstr")),
    (10, 50): ("connection.close", _CLOSE),
    (10, 51): ("connection.close-ok", ()),
    (10, 60): ("connection.blocked", _args("reason:shortstr")),
    (10, 61): ("connection.unblocked", ()),
    (10, 70): ("connection.update-secret", _args("new_secret:longstr", "reason:shortstr")),
    (10, 71): ("connection.update-secret-ok", ()),
    (20, 10): ("channel.open", _args("out_of_band:shortstr")),
    (20, 11): ("channel.open-ok", _args("channel_id:longstr")),
    (20, 20): ("channel.flow", _args("active:bit")),
    (20, 21): ("channel.flow-ok", _args("active:bit")),
    (20, 40): ("channel.close", _CLOSE),
    (20, 41): ("channel.close-ok", ()),
    (40, 10): ("exchange.declare", _args("ticket:short", "exchange:shortstr", "type:shortstr", "passive:bit",
                                         "durable:bit", "auto_delete:bit", "internal:bit", "nowait:bit",
                                         "arguments:table")),
    (40, 11): ("exchange.declare-ok", ()),
    (40, 20): ("exchange.delete", _args("ticket:short", "exchange:shortstr", "if_unused:bit", "nowait:bit")),
    (40, 21): ("exchange.delete-ok", ()),
    (40, 30): ("exchange.bind", _EXCHANGE_BIND),
    (40, 31): ("exchange.bind-ok", ()),
    (40, 40): ("exchange.unbind", _EXCHANGE_BIND),
    (40, 51): ("exchange.unbind-ok", ()),
    (50, 10): ("queue.declare", _args("ticket:short", "queue:shortstr", "passive:bit", "durable:bit", "exclusive:bit",
                                      "auto_delete:bit", "nowait:bit", "arguments:table")),
    (50, 11): ("queue.declare-ok", _args("queue:shortstr", "message_count:long", "consumer_count:long")),
    (50, 20): ("queue.bind", _args("ticket:short", "queue:shortstr", "exchange:shortstr", "routing_key:shortstr",
                                   "nowait:bit", "arguments:table")),
    (50, 21): ("queue.bind-ok", ()),
    (50, 30): ("queue.purge", _args("ticket:short", "queue:shortstr", "nowait:bit")),
    (50, 31): ("queue.purge-ok", _args("message_count:long")),
    (50, 40): ("queue.delete", _args("ticket:short", "queue:shortstr", "if_unused:bit", "if_empty:bit", "nowait:bit")),
    (50, 41): ("queue.delete-ok", _args("message_count:long")),
    (50, 50): ("queue.unbind", _args("ticket:short", "queue:shortstr", "exchange:shortstr", "routing_key:shortstr",
                                     "arguments:table")),
    (50, 51): ("queue.unbind-ok", ()),
    (60, 10): ("basic.qos", _args("prefetch_size:long", "prefetch_count:short", "global:bit")),
    (60, 11): ("basic.qos-ok", ()),
    (60, 20): ("basic.consume", _args("ticket:short", "queue:shortstr", "consumer_tag:shortstr", "no_local:bit",
                                      "no_ack:bit", "exclusive:bit", "nowait:bit", "arguments:table")),
    (60, 21): ("basic.consume-ok", _args("consumer_tag:shortstr")),
    (60, 30): ("basic.cancel", _args("consumer_tag:shortstr", "nowait:bit")),
    (60, 31): ("basic.cancel-ok", _args("consumer_tag:shortstr")),
    (60, 40): ("basic.publish", _args("ticket:short", "exchange:shortstr", "routing_key:shortstr", "mandatory:bit",
                                      "immediate:bit")),
    (60, 50): ("basic.return", _args("reply_code:short", "reply_text:shortstr", "exchange:shortstr",
                                     "routing_key:shortstr")),
    (60, 60): ("basic.deliver", _args("consumer_tag:shortstr", "delivery_tag:longlong", "redelivered:bit",
                                      "exchange:shortstr", "routing_key:shortstr")),
    (60, 70): ("basic.get", _args("ticket:short", "queue:shortstr", "no_ack:bit")),
    (60, 71): ("basic.get-ok", _args("delivery_tag:longlong", "redelivered:bit", "exchange:shortstr",
                                     "routing_key:shortstr", "message_count:long")),
    (60, 72): ("basic.get-empty", _args("cluster_id:shortstr")),
    (60, 80): ("basic.ack", _args("delivery_tag:longlong", "multiple:bit")),
    (60, 90): ("basic.reject", _args("delivery_tag:longlong", "requeue:bit")),
    (60, 100): ("basic.recover-async", _args("requeue:bit")),
    (60, 110): ("basic.recover", _args("requeue:bit")),
    (60, 111): ("basic.recover-ok", ()),
    (60, 120): ("basic.nack", _args("delivery_tag:longlong", "multiple:bit", "requeue:bit")),
    (85, 10): ("confirm.select", _args("nowait:bit")),
    (85, 11): ("confirm.select-ok", ()),
    (90, 10): ("tx.select", ()),
    (90, 11): ("tx.select-ok", ()),
    (90, 20): ("tx.commit", ()),
    (90, 21): ("tx.commit-ok", ()),
    (90, 30): ("tx.rollback", ()),
    (90, 31): ("tx.rollback-ok", ()),
}

# The basic class's content properties, in property-flag order (bit 15 first).
BASIC_PROPERTIES = _args(
    "content_type:shortstr", "content_encoding:shortstr", "headers:table", "delivery_mode:octet", "priority:octet",
    "correlation_id:shortstr", "reply_to:shortstr", "expiration:shortstr", "message_id:shortstr",
    "timestamp:timestamp", "type:shortstr", "user_id:shortstr", "app_id:shortstr", "cluster_id:shortstr",
)


class DecodeError(ValueError):
    pass


class Typed:
    """A field-table value with its one-letter AMQP type tag (S long string, l 64-bit integer, ...)."""

    __slots__ = ("tag", "value")

    def __init__(self, tag, value):
        self.tag, self.value = tag, value

    def __repr__(self):
        return f"{self.tag}:{self.value!r}"


class Reader:
    def __init__(self, data: bytes):
        self.data, self.offset, self._bits = data, 0, None

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise DecodeError(f"truncated: wanted {size} bytes at offset {self.offset} of {len(self.data)}")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        self._bits = None
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def bit(self) -> bool:
        # Consecutive bit arguments share octets, least significant bit first.
        if self._bits is None or self._bits[1] == 8:
            self._bits = [self.unpack("B"), 0]
        octet, index = self._bits
        self._bits[1] += 1
        return bool(octet >> index & 1)

    def shortstr(self) -> bytes:
        return self.take(self.unpack("B"))

    def longstr(self) -> bytes:
        return self.take(self.unpack(">I"))

    def argument(self, kind: str):
        if kind == BIT:
            return self.bit()
        if kind == TABLE:
            return self.table()
        if kind in (SHORTSTR, LONGSTR):
            return _text(self.shortstr() if kind == SHORTSTR else self.longstr())
        if kind == TIMESTAMP:
            return Typed("T", self.unpack(">Q"))
        return self.unpack({OCTET: "B", SHORT: ">H", LONG: ">I", LONGLONG: ">Q"}[kind])

    def table(self) -> dict:
        body = Reader(self.longstr())
        table = {}
        while body.offset < len(body.data):
            key = _text(body.shortstr())
            table[key] = body.value()
        return table

    def value(self) -> Typed:
        tag = chr(self.unpack("B"))
        simple = {"b": ">b", "B": "B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q", "f": ">f", "d": ">d",
                  "T": ">Q"}
        if tag in simple:
            return Typed(tag, self.unpack(simple[tag]))
        if tag == "t":
            return Typed(tag, bool(self.unpack("B")))
        if tag == "D":
            scale, unscaled = self.unpack("B"), self.unpack(">i")
            return Typed(tag, decimal.Decimal(unscaled).scaleb(-scale))
        if tag == "S":
            return Typed(tag, _text(self.longstr()))
        if tag == "x":
            return Typed(tag, self.longstr())
        if tag == "V":
            return Typed(tag, None)
        if tag == "F":
            return Typed(tag, self.table())
        if tag == "A":
            items = Reader(self.longstr())
            values = []
            while items.offset < len(items.data):
                values.append(items.value())
            return Typed(tag, values)
        raise DecodeError(f"unknown field type {tag!r}")


def _text(raw: bytes):
    """Strings as text where they are UTF-8 (they nearly always are), else the raw bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def decode_method(payload: bytes) -> tuple[str, dict]:
    """(name, arguments) of a method frame's payload."""
    reader = Reader(payload)
    class_id, method_id = reader.unpack(">H"), reader.unpack(">H")
    if (class_id, method_id) not in METHODS:
        return f"unknown-method({class_id},{method_id})", {"payload": payload[4:]}
    name, arguments = METHODS[class_id, method_id]
    return name, {field: reader.argument(kind) for field, kind in arguments}


def decode_header(payload: bytes) -> tuple[int, dict]:
    """(body size, properties present) of a content header frame's payload."""
    reader = Reader(payload)
    class_id, _weight, body_size = reader.unpack(">H"), reader.unpack(">H"), reader.unpack(">Q")
    if class_id != 60:
        raise DecodeError(f"content header for class {class_id}, not basic")
    flags = reader.unpack(">H")
    properties = {}
    for index, (field, kind) in enumerate(BASIC_PROPERTIES):
        if flags & (1 << (15 - index)):
            properties[field] = reader.argument(kind)
    return body_size, properties

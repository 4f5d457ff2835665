"""Turns a recording into what is compared: per test, per connection, ordered lanes of the broker's events.

Everything the broker sent is kept; only what legitimately differs between
two correct brokers, or between two runs against the same broker, is
normalised away. The client's own frames are not compared (the same client
code sends them), but they anchor the normalisation. The rules, and why each
is safe:

- Lanes instead of one stream. AMQP orders frames within a channel, and even
  there a broker interleaves independent flows by timing: deliveries to one
  consumer against those to another, publisher confirms against replies to
  synchronous methods. So each channel is split into lanes whose order is
  meaningful on its own: the channel's replies and errors, the deliveries (and
  cancel notification) of each consumer, the returned messages, the confirms.
  Order is compared within a lane, never across lanes or channels.
- Channel lifetimes. A channel number reused after a close starts a new set of
  lanes ("channel 1 (opened again, #2)"), as it is a new channel to the client.
- Confirms. Whether a broker confirms one message per basic.ack or several
  with multiple=true depends on timing; what a publisher learns is the outcome
  of each delivery tag, so the lane lists those outcomes by tag, the client's
  last publication on the channel as "last" (how many messages a polling
  test publishes is up to the client).
- Contents. A message's method, header and body frames are one event; how a
  body is cut into frames follows frame_max, which is compared where it is
  negotiated (connection.tune). A body the client published in the same test
  is shown as "published #n" (numbered by first publication), so random
  bodies compare equal and a broker delivering the wrong message still shows;
  one published by a connection of an earlier test (a worker that a fixture
  started once for several tests) as "published before this test".
- Polling. A run of identical consecutive events in a replies or returns lane
  counts once: that is what a test's polling loop looks like (a passive
  declare or a mandatory probe repeated until something changes), and its
  length measures time, not behaviour.
- Heartbeats are dropped: they depend on time, not on the scenario.
- Sockets. A broker closing the TCP connection is an event only when it does
  so without a connection.close handshake and before the client closed its
  side; after a handshake, which side closes the socket first is a race.
- Generated names become numbered placeholders, the same name always the
  same placeholder: random parts of client-chosen names (UUIDs and runs of
  twelve or more hexadecimal digits, as unique test names use), consumer tags
  the client chose, then server-generated queue names (amq.gen-*), consumer
  tags (amq.ctag-*) and direct reply-to names. Client-side names are numbered
  in the order the client first sent them, so the numbering follows the
  program, not the broker; server-side names in the order lanes are compared.
  A name the broker changed is not the client's, so it still shows.
- Timestamps the client sent are its clock readings: wherever the broker
  returns one of them it shows as "<client clock>"; any other still shows.
- Values that are a broker's identity or its clock reading are replaced: see
  REPLACED_VALUES.
"""

import base64
import dataclasses
import hashlib
import json
import pathlib
import re

import amqp_frames
from amqp_frames import Typed

# Flattened field names whose values legitimately differ, with the reason.
REPLACED_VALUES = [
    # Who the broker is: product name, version, build platform, legal notices, cluster name.
    (re.compile(r"server_properties\.(product|version|platform|copyright|information|cluster_name)$"),
     "<broker-specific>"),
    # The wall-clock time a message was dead-lettered.
    (re.compile(r"properties\.headers\.x-death\[\d+\]\.time$"), "<time>"),
]

# Random parts of names, by placeholder prefix; earlier patterns take precedence.
GENERATED_NAMES = [
    ("amq.gen-", re.compile(r"amq\.gen-[\w-]+")),
    ("amq.ctag-", re.compile(r"amq\.ctag-[\w.-]+")),
    ("amq.rabbitmq.reply-to.", re.compile(r"amq\.rabbitmq\.reply-to\.[\w+/=.-]+")),
    ("uuid-", re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")),
    ("hex-", re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{12,}(?![0-9A-Za-z])")),
]
ANY_GENERATED_NAME = re.compile("|".join(pattern.pattern for _, pattern in GENERATED_NAMES))
CLIENT_CONSUMER_TAG = "client-ctag-"

# Methods followed by a content header and body frames, from either side.
CONTENT_METHODS = {"basic.publish", "basic.deliver", "basic.get-ok", "basic.return"}
# Bodies up to this size are shown as text; longer ones by size and digest.
BODY_SHOWN = 200
LANE_ROLES = ["connection", "replies", "consumer", "returns", "confirms"]
POLLED_ROLES = {"replies", "returns"}


@dataclasses.dataclass
class Event:
    """One thing a side sent: a method with its content, if any, or a socket event."""

    kind: str
    fields: list  # (name, decoded value) pairs in wire order


@dataclasses.dataclass(frozen=True)
class Rendered:
    """An event as compared: kind and (field, text) pairs. Notes are shown, never compared."""

    kind: str
    fields: tuple
    notes: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)

    def value(self, name: str) -> str | None:
        text = dict(self.fields).get(name)
        if text is not None and name in self.notes:
            text += f" {self.notes[name]}"
        return text

    def show(self) -> str:
        parts = [self.kind, *(f"{name}={self.value(name)}" for name, _ in self.fields)]
        if "" in self.notes:
            parts.append(self.notes[""])
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class LaneKey:
    channel: int
    lifetime: int  # how many times this channel number had been opened before
    role: str  # one of LANE_ROLES; channel 0 is the "connection" lane
    tag: str = ""  # the consumer tag of a consumer lane


@dataclasses.dataclass
class Connection:
    lanes: dict  # LaneKey -> list of broker Events, in arrival order
    consumer_order: dict  # (channel, lifetime, consumer tag) -> rank of its basic.consume-ok
    confirms: dict  # (channel, lifetime) -> {delivery tag: [outcome, ...]}
    client: list  # the client's Events, in the order sent
    confirmed_publishes: dict  # (channel, lifetime) -> publications since confirm.select


@dataclasses.dataclass
class Test:
    outcome: str
    connections: list  # of list of (lane name, tuple of Rendered), in accept order


def load(recording: pathlib.Path, outcomes: pathlib.Path) -> dict[str, Test]:
    """Test id -> what the broker showed that test, normalised and rendered."""
    by_test: dict[str, list[_ConnectionBuilder]] = {}
    connections: dict[int, _ConnectionBuilder] = {}
    with recording.open() as lines:
        for line in lines:
            record = json.loads(line)
            conn = record["conn"]
            if record["event"] == "open":
                connections[conn] = _ConnectionBuilder()
                by_test.setdefault(record["test"], []).append(connections[conn])
            else:
                payload = base64.b64decode(record.get("payload", ""))
                connections[conn].add(record, payload)
    results = json.loads(outcomes.read_text()) if outcomes.exists() else {}
    built = {test: [builder.finish() for builder in builders] for test, builders in by_test.items()}
    published_anywhere = {body for connection in connections.values() for body in connection.published}
    return {test: Test(results.get(test, "not run"), _render(built.get(test, []), published_anywhere))
            for test in sorted(set(built) | set(results))}


class _ContentAssembler:
    """Joins content methods with their header and body frames, for one side of a connection."""

    def __init__(self):
        self.pending: dict[int, Event] = {}  # channel -> content method still collecting its frames
        self.body_left: dict[int, int] = {}

    def feed(self, frame_type: int, channel: int, payload: bytes) -> Event | None:
        """The event this frame completes, if any; raises DecodeError for a frame out of place."""
        if frame_type == amqp_frames.FRAME_METHOD:
            name, arguments = amqp_frames.decode_method(payload)
            event = Event(name, list(arguments.items()))
            if name not in CONTENT_METHODS:
                return event
            self.pending[channel] = event
            return None
        if frame_type == amqp_frames.FRAME_HEADER and channel in self.pending and channel not in self.body_left:
            body_size, properties = amqp_frames.decode_header(payload)
            self.pending[channel].fields += [("properties", properties), ("body", b"")]
            self.body_left[channel] = body_size
            return self._complete(channel)
        if frame_type == amqp_frames.FRAME_BODY and self.body_left.get(channel):
            name, body = self.pending[channel].fields[-1]
            self.pending[channel].fields[-1] = (name, body + payload)
            self.body_left[channel] -= len(payload)
            return self._complete(channel)
        raise amqp_frames.DecodeError(f"unexpected frame of type {frame_type}")

    def _complete(self, channel: int) -> Event | None:
        if self.body_left[channel] > 0:
            return None
        del self.body_left[channel]
        return self.pending.pop(channel)

    def incomplete(self):
        """(channel, event) for contents the connection ended in the middle of."""
        for channel, event in self.pending.items():
            yield channel, Event(event.kind + " (content incomplete)", event.fields)


class _ConnectionBuilder:
    """Sorts one connection's recorded events into lanes as they arrive."""

    def __init__(self):
        self.connection = Connection(lanes={}, consumer_order={}, confirms={}, client=[], confirmed_publishes={})
        self.lifetimes: dict[int, int] = {}  # channel -> number of channel.open-ok seen
        self.client_lifetimes: dict[int, int] = {}  # channel -> number of channel.open sent
        self.published: list[bytes] = []  # bodies the client published
        self.contents = {"broker": _ContentAssembler(), "client": _ContentAssembler()}
        self.handshake_done = False  # connection.close or close-ok sent: the socket may close any time
        self.client_closed = False

    def lane(self, key: LaneKey) -> list:
        return self.connection.lanes.setdefault(key, [])

    def add(self, record: dict, payload: bytes):
        event, side = record["event"], record.get("from")
        if event == "frame":
            self.add_frame(side, record["type"], record["channel"], payload)
        elif event == "eof" and side == "client":
            self.client_closed = True
        elif event == "eof":
            if not (self.handshake_done or self.client_closed):
                self.lane(LaneKey(0, 0, "connection")).append(Event("broker closed the socket", []))
        elif side != "client":  # the broker's protocol header or unparsable bytes, or no broker at all
            self.lane(LaneKey(0, 0, "connection")).append(Event(event, [("bytes", payload)] if payload else []))

    def add_frame(self, side: str, frame_type: int, channel: int, payload: bytes):
        if frame_type == amqp_frames.FRAME_HEARTBEAT:
            return
        try:
            event = self.contents[side].feed(frame_type, channel, payload)
        except amqp_frames.DecodeError as error:
            event = Event("undecodable frame", [("type", frame_type), ("error", str(error)), ("bytes", payload)])
        if event is None:
            return
        if side == "client":
            self.sent(channel, event)
        else:
            self.place(channel, event)

    def sent(self, channel: int, event: Event):
        self.connection.client.append(event)
        if event.kind == "channel.open":
            self.client_lifetimes[channel] = self.client_lifetimes.get(channel, 0) + 1
        key = (channel, self.client_lifetimes.get(channel, 0))
        if event.kind == "confirm.select":
            self.connection.confirmed_publishes[key] = 0
        elif event.kind == "basic.publish":
            self.published.append(dict(event.fields)["body"])
            if key in self.connection.confirmed_publishes:
                self.connection.confirmed_publishes[key] += 1

    def place(self, channel: int, event: Event):
        if event.kind in ("connection.close", "connection.close-ok"):
            self.handshake_done = True
        if event.kind == "channel.open-ok":
            self.lifetimes[channel] = self.lifetimes.get(channel, 0) + 1
        lifetime = self.lifetimes.get(channel, 0)
        arguments = dict(event.fields)
        if channel == 0:
            key = LaneKey(0, 0, "connection")
        elif event.kind in ("basic.deliver", "basic.cancel"):
            key = LaneKey(channel, lifetime, "consumer", arguments["consumer_tag"])
        elif event.kind == "basic.return":
            key = LaneKey(channel, lifetime, "returns")
        elif event.kind in ("basic.ack", "basic.nack"):
            self.confirm(channel, lifetime, event.kind, arguments)
            return
        else:
            key = LaneKey(channel, lifetime, "replies")
            if event.kind == "basic.consume-ok":
                order = self.connection.consumer_order
                order.setdefault((channel, lifetime, arguments["consumer_tag"]), len(order))
        self.lane(key).append(event)

    def confirm(self, channel: int, lifetime: int, kind: str, arguments: dict):
        outcomes = self.connection.confirms.setdefault((channel, lifetime), {})
        self.lane(LaneKey(channel, lifetime, "confirms"))  # filled in by finish()
        last = arguments["delivery_tag"]
        # multiple=true settles every tag up to this one that is not settled yet.
        tags = [tag for tag in range(1, last + 1) if tag not in outcomes] if arguments["multiple"] else []
        for tag in tags or [last]:
            outcomes.setdefault(tag, []).append(kind)

    def finish(self) -> Connection:
        for channel, event in self.contents["broker"].incomplete():
            self.place(channel, event)
        for key, outcomes in self.connection.confirms.items():
            publishes = self.connection.confirmed_publishes.get(key)
            self.lane(LaneKey(*key, "confirms")).extend(_confirm_events(outcomes, publishes))
        return self.connection


def _confirm_events(outcomes: dict[int, list[str]], publishes: int | None) -> list[Event]:
    """Runs of consecutive delivery tags settled the same way, e.g. basic.ack 1..5, basic.nack 6..last."""
    runs = []
    for tag in sorted(outcomes):
        kind = " then ".join(outcomes[tag])  # a tag settled twice shows as "basic.ack then basic.ack"
        if runs and runs[-1][0] == kind and runs[-1][2] == tag - 1:
            runs[-1][2] = tag
        else:
            runs.append([kind, tag, tag])

    def tag_name(tag):
        return "last" if tag == publishes else str(tag)

    return [Event(kind, [("delivery_tags", tag_name(first) + (f"..{tag_name(last)}" if last > first else ""))])
            for kind, first, last in runs]


def _render(connections: list[Connection], published_anywhere: set[bytes]) -> list:
    """Every connection's lanes in a fixed order, with names replaced consistently across the test."""
    renamer = Renamer()
    published = _learn_from_client(connections, renamer)
    published.update((body, None) for body in published_anywhere - published.keys())
    rendered = []
    for connection in connections:
        lanes = []
        # sorted() is stable: consumers without a consume-ok keep their order of arrival.
        for key in sorted(connection.lanes, key=lambda key: _lane_order(connection, key)):
            events = [_render_event(event, renamer, published) for event in connection.lanes[key]]
            if key.role in POLLED_ROLES:
                events = _collapse_repeats(events)
            lanes.append((_lane_name(key, renamer), tuple(events)))
        rendered.append(lanes)
    return rendered


def _learn_from_client(connections: list[Connection], renamer) -> dict[bytes, int]:
    """Numbers the client's names and published bodies in the order it sent them; body -> publication number."""
    published: dict[bytes, int] = {}
    renamer.learning = True
    for connection in connections:
        for event in connection.client:
            arguments = dict(event.fields)
            if event.kind == "basic.consume" and arguments.get("consumer_tag"):
                renamer.exact(arguments.pop("consumer_tag"), CLIENT_CONSUMER_TAG)
            if event.kind == "basic.publish":
                published.setdefault(arguments.pop("body"), len(published) + 1)
            for name, value in arguments.items():
                for _ in _flatten(name, value, renamer):
                    pass  # flattening is what meets, and so numbers, the names and clock readings
    renamer.learning = False
    return published


def _lane_order(connection: Connection, key: LaneKey):
    consumer_rank = connection.consumer_order.get((key.channel, key.lifetime, key.tag), len(connection.consumer_order))
    return key.channel, key.lifetime, LANE_ROLES.index(key.role), consumer_rank


def _lane_name(key: LaneKey, renamer) -> str:
    if key.role == "connection":
        return "connection"
    channel = f"channel {key.channel}" + (f" (opened again, #{key.lifetime})" if key.lifetime > 1 else "")
    if key.role == "consumer":
        return f"{channel}, deliveries to {renamer.text(key.tag)}"
    return f"{channel}, {key.role}"


def _collapse_repeats(events: list[Rendered]) -> list[Rendered]:
    collapsed: list[Rendered] = []
    repeats = 0
    for event in events:
        if collapsed and event == collapsed[-1]:
            repeats += 1
            collapsed[-1] = Rendered(event.kind, event.fields, {**event.notes, "": f"(x{repeats + 1})"})
        else:
            repeats = 0
            collapsed.append(event)
    return collapsed


def _render_event(event: Event, renamer, published: dict[bytes, int]) -> Rendered:
    fields, notes = [], {}
    for name, value in event.fields:
        if name == "body":
            fields.append((name, _render_body(value, published, renamer)))
            if value in published:
                notes[name] = f"({_show_body(value, renamer)})"
        elif name == "properties" and not value:
            continue  # no property set: no properties.* field says as much
        else:
            fields.extend(_flatten(name, value, renamer))
    return Rendered(event.kind, tuple((name, _replaced(name, text)) for name, text in fields), notes)


def _replaced(name: str, text: str) -> str:
    for pattern, replacement in REPLACED_VALUES:
        if pattern.search(name):
            return replacement
    return text


def _flatten(name: str, value, renamer):
    """(dotted name, text) leaves of a value; tables and arrays open up so a difference shows its exact place."""
    if isinstance(value, Typed) and value.tag in "FA":
        value = value.value
    if isinstance(value, dict):
        if not value:
            yield name, "{}"
        for key in sorted(value, key=str):
            yield from _flatten(f"{name}.{renamer.text(key)}", value[key], renamer)
    elif isinstance(value, list):
        if not value:
            yield name, "[]"
        for index, item in enumerate(value):
            yield from _flatten(f"{name}[{index}]", item, renamer)
    elif isinstance(value, Typed):
        # Long strings, by far the commonest, go without their tag; every other value shows its type.
        text = renamer.clock(value.value) if value.tag == "T" else _render_scalar(value.value, renamer)
        yield name, text if value.tag == "S" and isinstance(value.value, str) else f"{value.tag}:{text}"
    else:
        yield name, _render_scalar(value, renamer)


def _render_scalar(value, renamer) -> str:
    if isinstance(value, str):
        return repr(renamer.text(value))
    if isinstance(value, bytes):
        return repr(value)
    return str(value)


def _render_body(body: bytes, published: dict[bytes, int | None], renamer) -> str:
    if body not in published:
        return _show_body(body, renamer)
    return "published before this test" if published[body] is None else f"published #{published[body]}"


def _show_body(body: bytes, renamer) -> str:
    try:
        text = repr(renamer.text(body.decode("utf-8")))
    except UnicodeDecodeError:
        text = repr(body)
    if len(text) <= BODY_SHOWN:
        return f"{len(body)} bytes {text}"
    return f"{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}"


class Renamer:
    """Replaces generated names with numbered placeholders, the same name always by the same placeholder."""

    def __init__(self):
        self.names: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.client_clock: set[int] = set()
        self.learning = False  # True while walking the client's frames

    def clock(self, timestamp: int) -> str:
        """A timestamp, or <client clock> if the client sent it."""
        if self.learning:
            self.client_clock.add(timestamp)
        return "<client clock>" if timestamp in self.client_clock else str(timestamp)

    def exact(self, name: str, prefix: str):
        """Treats name, wherever it is a whole value, as generated."""
        self.names.setdefault(name, self._next(prefix))

    def text(self, text: str) -> str:
        if text in self.names:
            return self.names[text]
        return ANY_GENERATED_NAME.sub(lambda match: self._placeholder(match.group()), text)

    def _placeholder(self, name: str) -> str:
        if name not in self.names:
            prefix = next(prefix for prefix, pattern in GENERATED_NAMES if pattern.fullmatch(name))
            self.names[name] = self._next(prefix)
        return self.names[name]

    def _next(self, prefix: str) -> str:
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return f"{prefix}<{self.counts[prefix]}>"

"""The server-properties of connection.start, as clients use them to discover extensions.

RabbitMQ (3.10 and current alike) announces exactly these properties and these
capabilities, each a boolean true; clients such as pika decide from them
whether to use confirms, basic.nack, consumer priorities, direct reply-to etc.
"""

from support import AsyncScenario

CAPABILITIES = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "consumer_priorities": True,
    "direct_reply_to": True,
    "exchange_exchange_bindings": True,
    "per_consumer_qos": True,
    "publisher_confirms": True,
}

PROPERTIES = {"capabilities", "cluster_name", "copyright", "information", "platform", "product", "version"}


def server_properties() -> dict:
    # SelectConnection is the public way to see connection.start's server-properties.
    def on_channel(scenario, _channel):
        scenario.events.append(scenario.connection.server_properties)
        scenario.finish()

    [props] = AsyncScenario(on_channel).run().events
    return props


def test_capabilities_are_exactly_rabbitmqs():
    capabilities = server_properties()["capabilities"]
    assert capabilities == CAPABILITIES
    # Booleans on the wire ('t'), which pika decodes to bool; 1 would decode to int.
    assert all(type(value) is bool for value in capabilities.values())


def test_server_properties_are_exactly_rabbitmqs():
    props = server_properties()
    assert set(props) == PROPERTIES
    for key in PROPERTIES - {"capabilities"}:
        assert isinstance(props[key], str) and props[key], key

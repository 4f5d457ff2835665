package interop

import (
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// publishKeys publishes one confirmed message per routing key to exchange,
// with the key as its body, so that drain shows which keys a queue received.
func publishKeys(t *testing.T, ch *amqp.Channel, exchange string, keys ...string) {
	t.Helper()
	for _, key := range keys {
		publishConfirmed(t, ch, exchange, key, text(key))
	}
}

func TestDirectExchangeRoutesOnTheExactKey(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	exchange := declareExchange(t, ch, "direct")
	onlyRed := declareQueue(t, ch, nil)
	redAndGreen := declareQueue(t, ch, nil)
	bind(t, ch, onlyRed, "red", exchange, nil)
	bind(t, ch, redAndGreen, "red", exchange, nil)
	bind(t, ch, redAndGreen, "green", exchange, nil)

	publishKeys(t, ch, exchange, "red", "green", "blue", "Red")
	assertEqual(t, "bound to red", drain(t, ch, onlyRed), []string{"red"})
	assertEqual(t, "bound to red and green", drain(t, ch, redAndGreen), []string{"red", "green"})
}

func TestFanoutExchangeIgnoresTheKey(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	exchange := declareExchange(t, ch, "fanout")
	first := declareQueue(t, ch, nil)
	second := declareQueue(t, ch, nil)
	bind(t, ch, first, "", exchange, nil)
	bind(t, ch, second, "some.key", exchange, nil)

	publishKeys(t, ch, exchange, "a", "", "b.c")
	assertEqual(t, "first queue", drain(t, ch, first), []string{"a", "", "b.c"})
	assertEqual(t, "second queue", drain(t, ch, second), []string{"a", "", "b.c"})
}

func TestTopicExchangeMatchesWordPatterns(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	// The bindings of the RabbitMQ topics tutorial.
	exchange := declareExchange(t, ch, "topic")
	orange := declareQueue(t, ch, nil)
	rabbitsAndLazy := declareQueue(t, ch, nil)
	bind(t, ch, orange, "*.orange.*", exchange, nil)
	bind(t, ch, rabbitsAndLazy, "*.*.rabbit", exchange, nil)
	bind(t, ch, rabbitsAndLazy, "lazy.#", exchange, nil)

	publishKeys(t, ch, exchange,
		"quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
		"lazy.pink.rabbit", "quick.brown.fox", "orange", "quick.orange.male.rabbit",
		"lazy.orange.male.rabbit", "lazy")
	assertEqual(t, "*.orange.*", drain(t, ch, orange),
		[]string{"quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"})
	// lazy.pink.rabbit matches both bindings of the queue and still arrives once;
	// "#" also matches zero words.
	assertEqual(t, "*.*.rabbit and lazy.#", drain(t, ch, rabbitsAndLazy),
		[]string{"quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox", "lazy.pink.rabbit",
			"lazy.orange.male.rabbit", "lazy"})
}

func TestHeadersExchangeMatchesAllOrAny(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	exchange := declareExchange(t, ch, "headers")
	matchAll := declareQueue(t, ch, nil)
	matchAny := declareQueue(t, ch, nil)
	bind(t, ch, matchAll, "", exchange, amqp.Table{"x-match": "all", "format": "pdf", "type": "report"})
	bind(t, ch, matchAny, "", exchange, amqp.Table{"x-match": "any", "format": "pdf", "type": "log"})

	messages := []struct {
		body    string
		headers amqp.Table
	}{
		{"pdf report", amqp.Table{"format": "pdf", "type": "report"}},
		{"pdf", amqp.Table{"format": "pdf"}},
		{"log", amqp.Table{"type": "log"}},
		{"zip report", amqp.Table{"format": "zip", "type": "report"}},
		{"pdf report with extra", amqp.Table{"format": "pdf", "type": "report", "size": int32(3)}},
		{"no headers", nil},
	}
	for _, m := range messages {
		// The routing key plays no part.
		publishConfirmed(t, ch, exchange, "ignored", amqp.Publishing{Headers: m.headers, Body: []byte(m.body)})
	}
	assertEqual(t, "x-match all", drain(t, ch, matchAll), []string{"pdf report", "pdf report with extra"})
	assertEqual(t, "x-match any", drain(t, ch, matchAny), []string{"pdf report", "pdf", "log", "pdf report with extra"})
}

func TestExchangeToExchangeBindings(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	source := declareExchange(t, ch, "topic")
	destination := declareExchange(t, ch, "fanout")
	queue := declareQueue(t, ch, nil)
	bind(t, ch, queue, "", destination, nil)
	if err := ch.ExchangeBind(destination, "a.*", source, false, nil); err != nil {
		t.Fatalf("exchange.bind: %v", err)
	}

	// The source's binding key filters; the fanout destination then takes everything it gets.
	publishKeys(t, ch, source, "a.b", "b.c", "a.b.c")
	publishKeys(t, ch, destination, "direct to destination")
	assertEqual(t, "routed through both exchanges", drain(t, ch, queue), []string{"a.b", "direct to destination"})

	if err := ch.ExchangeUnbind(destination, "a.*", source, false, nil); err != nil {
		t.Fatalf("exchange.unbind: %v", err)
	}
	publishKeys(t, ch, source, "a.b")
	assertEqual(t, "after exchange.unbind", drain(t, ch, queue), []string{})
}

func TestServerNamedQueue(t *testing.T) {
	t.Parallel()
	_, ch := session(t)
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(q.Name, "amq.gen-") {
		t.Fatalf("server-named queue %q does not start with amq.gen-", q.Name)
	}
	assertEqual(t, "messages and consumers", [2]int{q.Messages, q.Consumers}, [2]int{0, 0})
}

func TestPassiveDeclareOfAMissingQueueClosesOnlyTheChannel(t *testing.T) {
	t.Parallel()
	conn, ch := session(t)
	closes := watchClose(ch)
	missing := unique("missing")
	reason := fmt.Sprintf("NOT_FOUND - no queue '%s' in vhost '%s'", missing, vhost)

	_, err := ch.QueueDeclarePassive(missing, false, false, false, false, nil)
	assertBrokerError(t, err, 404, reason)
	expectClosed(t, ch, closes, 404, reason)
	if conn.IsClosed() {
		t.Fatal("a channel error closed the connection")
	}
	declareQueue(t, openChannel(t, conn), nil)
}

func TestPassiveDeclareOfAMissingExchange(t *testing.T) {
	t.Parallel()
	_, ch := session(t)
	closes := watchClose(ch)
	missing := unique("missing")
	reason := fmt.Sprintf("NOT_FOUND - no exchange '%s' in vhost '%s'", missing, vhost)

	err := ch.ExchangeDeclarePassive(missing, "direct", false, false, false, false, nil)
	assertBrokerError(t, err, 404, reason)
	expectClosed(t, ch, closes, 404, reason)
}

func TestBindingToAMissingExchange(t *testing.T) {
	t.Parallel()
	_, ch := session(t)
	closes := watchClose(ch)
	queue := declareQueue(t, ch, nil)
	missing := unique("missing")
	reason := fmt.Sprintf("NOT_FOUND - no exchange '%s' in vhost '%s'", missing, vhost)

	assertBrokerError(t, ch.QueueBind(queue, "key", missing, false, nil), 404, reason)
	expectClosed(t, ch, closes, 404, reason)
}

func TestInequivalentRedeclarationFails(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	setup := openChannel(t, conn)
	transient := declareQueue(t, setup, nil)
	withTTL := declareQueue(t, setup, amqp.Table{"x-message-ttl": int32(1000)})
	direct := declareExchange(t, setup, "direct")

	cases := []struct {
		name      string
		redeclare func(*amqp.Channel) error
		reason    string
	}{
		{
			"queue durability",
			func(ch *amqp.Channel) error {
				_, err := ch.QueueDeclare(transient, true, false, false, false, nil)
				return err
			},
			fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '%s': "+
				"received 'true' but current is 'false'", transient, vhost),
		},
		{
			"queue argument",
			func(ch *amqp.Channel) error {
				_, err := ch.QueueDeclare(withTTL, false, false, false, false, amqp.Table{"x-message-ttl": int32(2000)})
				return err
			},
			fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in vhost '%s': "+
				"received '2000' but current is '1000'",
				withTTL, vhost),
		},
		{
			"exchange type",
			func(ch *amqp.Channel) error {
				return ch.ExchangeDeclare(direct, "fanout", false, false, false, false, nil)
			},
			fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '%s': "+
				"received 'fanout' but current is 'direct'", direct, vhost),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := openChannel(t, conn)
			closes := watchClose(ch)
			assertBrokerError(t, c.redeclare(ch), 406, c.reason)
			expectClosed(t, ch, closes, 406, c.reason)
		})
	}
}

package interop

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// deadLetterTarget declares a fanout dead-letter exchange and a queue bound to
// it, and returns the exchange and a consumer of that queue. A fanout keeps the
// dead-lettered message's routing key observable whatever it is.
func deadLetterTarget(t *testing.T, ch *amqp.Channel) (string, <-chan amqp.Delivery) {
	t.Helper()
	exchange := declareExchange(t, ch, "fanout")
	queue := declareQueue(t, ch, nil)
	bind(t, ch, queue, "", exchange, nil)
	_, deliveries := consume(t, ch, queue, true, nil)
	return exchange, deliveries
}

// death is the part of an x-death entry a test can predict.
type death struct {
	reason, queue, exchange string
	routingKeys             []string
}

// assertDeadLettered checks the headers RabbitMQ adds to a message dead-lettered
// once: an x-death list with one entry, and the x-first-death-* summary. It
// returns the entry for further checks.
func assertDeadLettered(t *testing.T, headers amqp.Table, want death) amqp.Table {
	t.Helper()
	deaths := field[[]interface{}](t, headers, "x-death")
	if len(deaths) != 1 {
		t.Fatalf("x-death has %d entries, want 1: %v", len(deaths), deaths)
	}
	entry, ok := deaths[0].(amqp.Table)
	if !ok {
		t.Fatalf("x-death entry is %T, want a table", deaths[0])
	}
	assertEqual(t, "x-death count", field[int64](t, entry, "count"), int64(1))
	assertEqual(t, "x-death reason", field[string](t, entry, "reason"), want.reason)
	assertEqual(t, "x-death queue", field[string](t, entry, "queue"), want.queue)
	assertEqual(t, "x-death exchange", field[string](t, entry, "exchange"), want.exchange)
	routingKeys := []interface{}{}
	for _, key := range want.routingKeys {
		routingKeys = append(routingKeys, key)
	}
	assertEqual(t, "x-death routing-keys", field[[]interface{}](t, entry, "routing-keys"), routingKeys)
	// An AMQP timestamp has whole seconds.
	if at := field[time.Time](t, entry, "time"); time.Since(at) > time.Minute || time.Until(at) > time.Second {
		t.Errorf("x-death time %v is not about now", at)
	}

	assertEqual(t, "x-first-death-reason", field[string](t, headers, "x-first-death-reason"), want.reason)
	assertEqual(t, "x-first-death-queue", field[string](t, headers, "x-first-death-queue"), want.queue)
	assertEqual(t, "x-first-death-exchange", field[string](t, headers, "x-first-death-exchange"), want.exchange)
	return entry
}

func TestRejectedMessageIsDeadLetteredWithTheConfiguredKey(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	deadLetterExchange, deadLetters := deadLetterTarget(t, ch)
	queue := declareQueue(t, ch, amqp.Table{
		"x-dead-letter-exchange":    deadLetterExchange,
		"x-dead-letter-routing-key": "dead",
	})
	publishConfirmed(t, ch, "", queue, amqp.Publishing{
		Body:      []byte("rejected"),
		MessageId: "m-1",
		Headers:   amqp.Table{"app": "kept"},
	})

	if err := get(t, ch, queue, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	dead := receive(t, deadLetters)
	assertEqual(t, "body", string(dead.Body), "rejected")
	assertEqual(t, "exchange and routing key", [2]string{dead.Exchange, dead.RoutingKey}, [2]string{deadLetterExchange, "dead"})
	assertEqual(t, "message id", dead.MessageId, "m-1")
	assertEqual(t, "application header", dead.Headers["app"], "kept")
	// x-death records where the message was and how it got there, not the dead-letter key.
	assertDeadLettered(t, dead.Headers, death{reason: "rejected", queue: queue, exchange: "", routingKeys: []string{queue}})
	assertEqual(t, "left in the queue", drain(t, ch, queue), []string{})
}

func TestNackedMessageIsDeadLetteredWithItsOwnKey(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	deadLetterExchange, deadLetters := deadLetterTarget(t, ch)
	exchange := declareExchange(t, ch, "direct")
	// No x-dead-letter-routing-key: the message keeps the key it was published with.
	queue := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": deadLetterExchange})
	bind(t, ch, queue, "orders", exchange, nil)
	publishConfirmed(t, ch, exchange, "orders", text("nacked"))

	_, deliveries := consume(t, ch, queue, false, nil)
	if err := receive(t, deliveries).Nack(false, false); err != nil {
		t.Fatal(err)
	}
	dead := receive(t, deadLetters)
	assertEqual(t, "body", string(dead.Body), "nacked")
	assertEqual(t, "exchange and routing key", [2]string{dead.Exchange, dead.RoutingKey}, [2]string{deadLetterExchange, "orders"})
	assertDeadLettered(t, dead.Headers, death{reason: "rejected", queue: queue, exchange: exchange, routingKeys: []string{"orders"}})
}

func TestRequeuedMessageIsNotDeadLettered(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	deadLetterExchange, deadLetters := deadLetterTarget(t, ch)
	queue := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": deadLetterExchange})
	publishBodies(t, ch, queue, "requeued", "rejected")

	if err := get(t, ch, queue, false).Nack(false, true); err != nil {
		t.Fatal(err)
	}
	// Back at the head, it is rejected for real this time, then the other one.
	for _, body := range []string{"requeued", "rejected"} {
		d := get(t, ch, queue, false)
		assertEqual(t, "head of the queue", string(d.Body), body)
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	// Dead letters arrive in rejection order; the requeue added none, and no death.
	dead := receiveN(t, deadLetters, 2)
	assertEqual(t, "dead letters", bodiesOf(dead), []string{"requeued", "rejected"})
	assertDeadLettered(t, dead[0].Headers, death{reason: "rejected", queue: queue, exchange: "", routingKeys: []string{queue}})
}

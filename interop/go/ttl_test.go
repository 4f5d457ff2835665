package interop

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestQueueMessageTTLDeadLettersExpiredMessages(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	deadLetterExchange, deadLetters := deadLetterTarget(t, ch)
	queue := declareQueue(t, ch, amqp.Table{
		"x-message-ttl":          int32(50),
		"x-dead-letter-exchange": deadLetterExchange,
	})
	publishConfirmed(t, ch, "", queue, text("expires"))

	dead := receive(t, deadLetters)
	assertEqual(t, "body", string(dead.Body), "expires")
	entry := assertDeadLettered(t, dead.Headers, death{reason: "expired", queue: queue, exchange: "", routingKeys: []string{queue}})
	if _, ok := entry["original-expiration"]; ok {
		t.Errorf("x-death has original-expiration for a message published without one: %v", entry)
	}
	assertEqual(t, "left in the queue", drain(t, ch, queue), []string{})
}

func TestPerMessageExpirationDeadLettersExpiredMessages(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	deadLetterExchange, deadLetters := deadLetterTarget(t, ch)
	queue := declareQueue(t, ch, amqp.Table{"x-dead-letter-exchange": deadLetterExchange})
	publishConfirmed(t, ch, "", queue, amqp.Publishing{Body: []byte("expires"), Expiration: "50"})

	dead := receive(t, deadLetters)
	entry := assertDeadLettered(t, dead.Headers, death{reason: "expired", queue: queue, exchange: "", routingKeys: []string{queue}})
	// The expiration moves into x-death so that the dead letter does not expire in turn.
	assertEqual(t, "original-expiration", field[string](t, entry, "original-expiration"), "50")
	assertEqual(t, "expiration of the dead letter", dead.Expiration, "")
}

// A TTL of 0 expires a message on arrival unless a consumer can take it at once.
func TestQueueTTLZeroDropsMessagesNoConsumerCanTake(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, amqp.Table{"x-message-ttl": int32(0)})
	publishConfirmed(t, ch, "", queue, text("queue ttl 0"))
	assertEqual(t, "queue", drain(t, ch, queue), []string{})
}

func TestExpirationZeroDropsMessagesNoConsumerCanTake(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	publishConfirmed(t, ch, "", queue, amqp.Publishing{Body: []byte("expiration 0"), Expiration: "0"})
	assertEqual(t, "queue", drain(t, ch, queue), []string{})
}

func TestQueueTTLZeroMessagesReachAWaitingConsumer(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, amqp.Table{"x-message-ttl": int32(0)})
	_, deliveries := consume(t, ch, queue, false, nil)

	publishConfirmed(t, ch, "", queue, text("delivered at once"))
	assertEqual(t, "delivered", string(receive(t, deliveries).Body), "delivered at once")
}

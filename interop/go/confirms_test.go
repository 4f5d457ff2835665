package interop

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestConfirmsAckEveryPublishInOrder(t *testing.T) {
	t.Parallel()
	ch := openChannel(t, connect(t))
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	queue := declareQueue(t, ch, nil)
	const count = 20
	// The client blocks its reader when a listener is full, so room for all.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, count))
	for i := 0; i < count; i++ {
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, text(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// amqp091-go turns multiple acks into one confirmation per tag, in order.
	for tag := uint64(1); tag <= count; tag++ {
		select {
		case c := <-confirms:
			assertEqual(t, "confirmation", c, amqp.Confirmation{DeliveryTag: tag, Ack: true})
		case <-time.After(timeout):
			t.Fatalf("no confirm for delivery tag %d within %v", tag, timeout)
		}
	}
	assertEqual(t, "messages in the queue", readyCount(t, ch, queue), count)
}

func TestPublishTheQueueRefusesIsNacked(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})

	assertEqual(t, "confirm while there is room", publishAndConfirm(t, ch, "", queue, false, text("kept")).Ack, true)
	assertEqual(t, "confirm once the queue is full", publishAndConfirm(t, ch, "", queue, false, text("refused")).Ack, false)
	assertEqual(t, "queue", drain(t, ch, queue), []string{"kept"})
}

func TestUnroutableMandatoryMessageIsReturnedAndConfirmed(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	exchange := declareExchange(t, ch, "direct")
	msg := amqp.Publishing{
		Body:        []byte("lost"),
		MessageId:   "m-1",
		ContentType: "text/plain",
		Headers:     amqp.Table{"attempt": int32(1)},
	}

	// RabbitMQ acks the unroutable message, after sending basic.return.
	assertEqual(t, "confirm", publishAndConfirm(t, ch, exchange, "nowhere", true, msg).Ack, true)
	select {
	case r := <-returns:
		assertEqual(t, "reply", [2]interface{}{r.ReplyCode, r.ReplyText}, [2]interface{}{uint16(312), "NO_ROUTE"})
		assertEqual(t, "exchange and key", [2]string{r.Exchange, r.RoutingKey}, [2]string{exchange, "nowhere"})
		assertEqual(t, "body", string(r.Body), "lost")
		assertEqual(t, "properties", [2]string{r.MessageId, r.ContentType}, [2]string{"m-1", "text/plain"})
		assertEqual(t, "headers", r.Headers, amqp.Table{"attempt": int32(1)})
	default:
		t.Fatal("no basic.return before the confirm of an unroutable mandatory message")
	}
}

func TestOnlyUnroutableMandatoryMessagesAreReturned(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	returns := ch.NotifyReturn(make(chan amqp.Return, 2))
	exchange := declareExchange(t, ch, "direct")
	queue := declareQueue(t, ch, nil)
	bind(t, ch, queue, "bound", exchange, nil)

	assertEqual(t, "confirm", publishAndConfirm(t, ch, exchange, "bound", true, text("routed mandatory")).Ack, true)
	publishConfirmed(t, ch, exchange, "nowhere", text("unroutable, not mandatory"))
	// A return would have arrived before the confirms awaited above.
	select {
	case r := <-returns:
		t.Fatalf("unexpected basic.return %d %s of %q", r.ReplyCode, r.ReplyText, r.Body)
	default:
	}
	assertEqual(t, "queue", drain(t, ch, queue), []string{"routed mandatory"})
}

func TestPublishingToAMissingExchangeClosesTheChannel(t *testing.T) {
	t.Parallel()
	_, ch := session(t)
	closes := watchClose(ch)
	missing := unique("missing")
	// basic.publish has no reply: the error comes as a channel.close.
	if err := ch.PublishWithContext(context.Background(), missing, "key", false, false, text("x")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, ch, closes, 404, fmt.Sprintf("NOT_FOUND - no exchange '%s' in vhost '%s'", missing, vhost))
}

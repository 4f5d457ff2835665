package interop

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// directReplyTo is RabbitMQ's pseudo-queue for replies without a reply queue.
const directReplyTo = "amq.rabbitmq.reply-to"

// serveRPC answers each request on a new queue with its body in upper case,
// published to its reply-to with its correlation id, until the test ends. It
// returns the request queue and the reply-to of each request it served.
func serveRPC(t *testing.T) (string, <-chan string) {
	t.Helper()
	ch := openChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	_, requests := consume(t, ch, queue, false, nil)
	replyTos := make(chan string, 10)

	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		for request := range requests {
			replyTos <- request.ReplyTo
			reply := amqp.Publishing{CorrelationId: request.CorrelationId, Body: bytes.ToUpper(request.Body)}
			if err := ch.PublishWithContext(context.Background(), "", request.ReplyTo, false, false, reply); err != nil {
				t.Errorf("rpc server: publish reply: %v", err)
				return
			}
			if err := request.Ack(false); err != nil {
				t.Errorf("rpc server: ack request: %v", err)
				return
			}
		}
	}()
	// Closing the channel ends requests, and so the server.
	t.Cleanup(func() {
		ch.Close()
		served.Wait()
	})
	return queue, replyTos
}

// call sends one request on ch and checks the reply that arrives on replies.
func call(t *testing.T, ch *amqp.Channel, requestQueue, replyTo string, replies <-chan amqp.Delivery) {
	t.Helper()
	correlationID := unique("corr")
	request := amqp.Publishing{ReplyTo: replyTo, CorrelationId: correlationID, Body: []byte("ping")}
	if err := ch.PublishWithContext(context.Background(), "", requestQueue, false, false, request); err != nil {
		t.Fatal(err)
	}
	reply := receive(t, replies)
	assertEqual(t, "correlation id", reply.CorrelationId, correlationID)
	assertEqual(t, "reply", string(reply.Body), "PING")
}

func TestRPCWithAnExclusiveReplyQueue(t *testing.T) {
	t.Parallel()
	requestQueue, replyTos := serveRPC(t)
	ch := openChannel(t, connect(t))
	replyQueue, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, replies := consume(t, ch, replyQueue.Name, true, nil)

	call(t, ch, requestQueue, replyQueue.Name, replies)
	assertEqual(t, "reply-to seen by the server", <-replyTos, replyQueue.Name)
}

func TestRPCWithDirectReplyTo(t *testing.T) {
	t.Parallel()
	requestQueue, replyTos := serveRPC(t)
	ch := openChannel(t, connect(t))
	// Direct reply-to needs a no-ack consumer on the channel that publishes the request.
	_, replies := consume(t, ch, directReplyTo, true, nil)

	call(t, ch, requestQueue, directReplyTo, replies)
	// The broker gives the server a routable name in place of the pseudo-queue's.
	if replyTo := <-replyTos; !strings.HasPrefix(replyTo, directReplyTo+".") {
		t.Fatalf("the server saw reply-to %q, want %s.<suffix>", replyTo, directReplyTo)
	}
	// The same consumer serves any number of calls.
	call(t, ch, requestQueue, directReplyTo, replies)
}

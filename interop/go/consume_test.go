package interop

import (
	"testing"
)

func TestConsumeWithManualAcks(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	publishBodies(t, ch, queue, "a", "b", "c")

	tag, deliveries := consume(t, ch, queue, false, nil)
	received := receiveN(t, deliveries, 3)
	assertEqual(t, "bodies", bodiesOf(received), []string{"a", "b", "c"})
	for i, d := range received {
		assertEqual(t, "delivery tag", d.DeliveryTag, uint64(i+1))
		assertEqual(t, "consumer tag", d.ConsumerTag, tag)
		assertEqual(t, "exchange and routing key", [2]string{d.Exchange, d.RoutingKey}, [2]string{"", queue})
		assertEqual(t, "redelivered", d.Redelivered, false)
		ack(t, d, false)
	}
	if err := ch.Cancel(tag, false); err != nil {
		t.Fatalf("basic.cancel: %v", err)
	}
	// Acked messages are gone for good: nothing comes back after the consumer stops.
	assertEqual(t, "left in the queue", drain(t, ch, queue), []string{})
}

func TestQosPrefetchLimitsUnackedDeliveries(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	publishBodies(t, ch, queue, "1", "2", "3", "4", "5")
	if err := ch.Qos(2, 0, false); err != nil {
		t.Fatalf("basic.qos: %v", err)
	}

	_, deliveries := consume(t, ch, queue, false, nil)
	first := receiveN(t, deliveries, 2)
	assertEqual(t, "first deliveries", bodiesOf(first), []string{"1", "2"})
	// The queue sent what it could in one go, so it holds back exactly the rest.
	assertEqual(t, "ready while two are unacked", readyCount(t, ch, queue), 3)

	// Each ack makes room for exactly one more.
	ack(t, first[0], false)
	assertEqual(t, "after one ack", string(receive(t, deliveries).Body), "3")
	assertEqual(t, "ready after one ack", readyCount(t, ch, queue), 2)
}

func TestBasicGet(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	if _, ok, err := ch.Get(queue, false); err != nil || ok {
		t.Fatalf("basic.get from an empty queue: ok=%v err=%v, want get-empty", ok, err)
	}

	publishBodies(t, ch, queue, "first", "second")
	first := get(t, ch, queue, false)
	assertEqual(t, "body", string(first.Body), "first")
	// message-count is what remains after this message.
	assertEqual(t, "message count", first.MessageCount, uint32(1))
	assertEqual(t, "routing key", first.RoutingKey, queue)
	assertEqual(t, "redelivered", first.Redelivered, false)
	ack(t, first, false)

	second := get(t, ch, queue, true)
	assertEqual(t, "body", string(second.Body), "second")
	assertEqual(t, "message count", second.MessageCount, uint32(0))
	assertEqual(t, "delivery tags continue on the channel", second.DeliveryTag, first.DeliveryTag+1)
	assertEqual(t, "left in the queue", drain(t, ch, queue), []string{})
}

func TestAckMultiple(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	publishBodies(t, ch, queue, "a", "b", "c")
	_, deliveries := consume(t, ch, queue, false, nil)
	received := receiveN(t, deliveries, 3)

	// Acks a and b together; c stays unacked.
	ack(t, received[1], true)
	// basic.recover requeues what is still unacked, and it comes straight back.
	if err := ch.Recover(true); err != nil {
		t.Fatalf("basic.recover: %v", err)
	}
	again := receive(t, deliveries)
	assertEqual(t, "redelivered body", string(again.Body), "c")
	assertEqual(t, "redelivered flag", again.Redelivered, true)
	ack(t, again, false)
	publishBodies(t, ch, queue, "marker")
	assertEqual(t, "next delivery", string(receive(t, deliveries).Body), "marker")
}

func TestUnackedMessagesAreRedeliveredWhenTheChannelCloses(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	ch := confirmChannel(t, conn)
	queue := declareQueue(t, ch, nil)
	publishBodies(t, ch, queue, "unacked")

	first := openChannel(t, conn)
	_, deliveries := consume(t, first, queue, false, nil)
	assertEqual(t, "first delivery redelivered", receive(t, deliveries).Redelivered, false)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	_, deliveries = consume(t, openChannel(t, conn), queue, false, nil)
	again := receive(t, deliveries)
	assertEqual(t, "body", string(again.Body), "unacked")
	assertEqual(t, "redelivered", again.Redelivered, true)
}

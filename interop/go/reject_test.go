package interop

import (
	"testing"
)

func TestRejectWithRequeueRestoresTheOriginalPosition(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	publishBodies(t, ch, queue, "a", "b", "c", "d")
	a, b, c := get(t, ch, queue, false), get(t, ch, queue, false), get(t, ch, queue, false)

	// Rejected out of order, they go back where they were, ahead of d.
	if err := c.Reject(true); err != nil {
		t.Fatal(err)
	}
	if err := a.Reject(true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		body        string
		redelivered bool
	}{{"a", true}, {"c", true}, {"d", false}} {
		d := get(t, ch, queue, true)
		assertEqual(t, "body", string(d.Body), want.body)
		assertEqual(t, "redelivered flag of "+want.body, d.Redelivered, want.redelivered)
	}
	ack(t, b, false)
	assertEqual(t, "left in the queue", drain(t, ch, queue), []string{})
}

func TestNackMultipleWithRequeueRedeliversInOrder(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	publishBodies(t, ch, queue, "a", "b", "c")
	_, deliveries := consume(t, ch, queue, false, nil)
	received := receiveN(t, deliveries, 3)

	if err := received[2].Nack(true, true); err != nil {
		t.Fatal(err)
	}
	again := receiveN(t, deliveries, 3)
	assertEqual(t, "redelivered bodies", bodiesOf(again), []string{"a", "b", "c"})
	for _, d := range again {
		assertEqual(t, "redelivered flag of "+string(d.Body), d.Redelivered, true)
	}
	// The redeliveries carry new delivery tags.
	assertEqual(t, "first new delivery tag", again[0].DeliveryTag, uint64(4))
}

func TestRejectAndNackWithoutRequeueDiscard(t *testing.T) {
	t.Parallel()
	ch := confirmChannel(t, connect(t))
	queue := declareQueue(t, ch, nil)
	publishBodies(t, ch, queue, "rejected", "nacked", "kept")

	if err := get(t, ch, queue, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	if err := get(t, ch, queue, false).Nack(false, false); err != nil {
		t.Fatal(err)
	}
	// basic.get follows the reject and nack to the queue, so they have taken effect.
	assertEqual(t, "left in the queue", drain(t, ch, queue), []string{"kept"})
	if err := ch.Recover(true); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "after basic.recover", drain(t, ch, queue), []string{})
}

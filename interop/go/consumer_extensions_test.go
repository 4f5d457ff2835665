package interop

import (
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// collect receives n deliveries in all from the named consumers and returns
// the bodies each one got, in order.
func collect(t *testing.T, n int, consumers map[string]<-chan amqp.Delivery) map[string][]string {
	t.Helper()
	names := make([]string, 0, len(consumers))
	cases := make([]reflect.SelectCase, 0, len(consumers)+1)
	got := map[string][]string{}
	for name, deliveries := range consumers {
		names = append(names, name)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deliveries)})
		got[name] = []string{}
	}
	deadline := time.After(timeout)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline)})
	for received := 0; received < n; received++ {
		chosen, value, ok := reflect.Select(cases)
		if chosen == len(names) {
			t.Fatalf("received %d of %d deliveries within %v: %v", received, n, timeout, got)
		}
		if !ok {
			t.Fatalf("consumer %s ended while deliveries were expected; so far %v", names[chosen], got)
		}
		got[names[chosen]] = append(got[names[chosen]], string(value.Interface().(amqp.Delivery).Body))
	}
	return got
}

func TestSingleActiveConsumer(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	ch := confirmChannel(t, conn)
	queue := declareQueue(t, ch, amqp.Table{"x-single-active-consumer": true})
	firstChannel := openChannel(t, conn)
	firstTag, first := consume(t, firstChannel, queue, true, nil)
	_, second := consume(t, openChannel(t, conn), queue, true, nil)

	// Round-robin would give the second consumer a share; only the first is active.
	publishBodies(t, ch, queue, "1", "2", "3")
	assertEqual(t, "while the first consumer is active", collect(t, 3, map[string]<-chan amqp.Delivery{
		"first": first, "second": second,
	}), map[string][]string{"first": {"1", "2", "3"}, "second": {}})

	// When it cancels, the next consumer in line takes over.
	if err := firstChannel.Cancel(firstTag, false); err != nil {
		t.Fatalf("basic.cancel: %v", err)
	}
	publishBodies(t, ch, queue, "4")
	assertEqual(t, "after the first consumer cancelled", string(receive(t, second).Body), "4")
}

func TestConsumerPriorities(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	ch := confirmChannel(t, conn)
	queue := declareQueue(t, ch, nil)

	// The low-priority consumer registers first, so round-robin would start with it.
	lowChannel := openChannel(t, conn)
	if err := lowChannel.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	_, low := consume(t, lowChannel, queue, false, amqp.Table{"x-priority": int32(1)})
	highChannel := openChannel(t, conn)
	if err := highChannel.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	_, high := consume(t, highChannel, queue, false, amqp.Table{"x-priority": int32(10)})

	// The high-priority consumer gets messages while it has room for them
	// (prefetch 2); only then does the low-priority one get any.
	publishBodies(t, ch, queue, "1", "2", "3", "4", "5")
	assertEqual(t, "deliveries by consumer", collect(t, 5, map[string]<-chan amqp.Delivery{
		"high": high, "low": low,
	}), map[string][]string{"high": {"1", "2"}, "low": {"3", "4", "5"}})
}

func TestDeletingTheQueueCancelsItsConsumers(t *testing.T) {
	t.Parallel()
	conn, ch := session(t)
	queue := declareQueue(t, ch, nil)
	cancels := ch.NotifyCancel(make(chan string, 1))
	tag, deliveries := consume(t, ch, queue, false, nil)

	other := openChannel(t, conn)
	if _, err := other.QueueDelete(queue, false, false, false); err != nil {
		t.Fatalf("queue.delete: %v", err)
	}
	// consumer_cancel_notify: the broker sends basic.cancel with the consumer's tag.
	select {
	case cancelled := <-cancels:
		assertEqual(t, "cancelled consumer", cancelled, tag)
	case <-time.After(timeout):
		t.Fatalf("no basic.cancel within %v of deleting the queue", timeout)
	}
	select {
	case d, ok := <-deliveries:
		if ok {
			t.Fatalf("unexpected delivery %q after the cancel", d.Body)
		}
	case <-time.After(timeout):
		t.Fatal("the client did not end the cancelled consumer's deliveries")
	}
	// Only the consumer ends; its channel stays open.
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("channel unusable after the cancel: %v", err)
	}
}

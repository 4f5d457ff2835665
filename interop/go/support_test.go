package interop

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// timeout bounds every single broker event a test waits for, so that a
// broker that never answers fails the test instead of hanging it.
const timeout = 5 * time.Second

// clientConfig is what amqp.Dial uses, plus a bounded connect.
func clientConfig() amqp.Config {
	return amqp.Config{
		Heartbeat: 10 * time.Second,
		Locale:    "en_US",
		Dial:      amqp.DefaultDial(timeout),
	}
}

// connectWith opens a connection with config; it is closed when the test ends.
func connectWith(t *testing.T, config amqp.Config) *amqp.Connection {
	t.Helper()
	conn, err := amqp.DialConfig(brokerURL, config)
	if err != nil {
		t.Fatalf("connect to %s: %v", brokerURL, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func connect(t *testing.T) *amqp.Connection {
	t.Helper()
	return connectWith(t, clientConfig())
}

// openChannel opens a channel on conn; it is closed when the test ends.
func openChannel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	// Closing a channel the broker already closed only returns ErrClosed.
	t.Cleanup(func() { ch.Close() })
	return ch
}

// session is the usual start of a test: a connection and one channel on it.
func session(t *testing.T) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn := connect(t)
	return conn, openChannel(t, conn)
}

// confirmListeners holds, for each channel confirmChannel opened, the
// listener publishAndConfirm takes its confirms from. (amqp091-go 1.5.0 can
// lose a deferred confirmation whose ack arrives before PublishWithDeferredConfirm
// has registered it, rabbitmq/amqp091-go#182, so the suite listens instead.)
var confirmListeners sync.Map

// confirmChannel opens a channel in publisher-confirm mode.
func confirmChannel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch := openChannel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	// Room for one: publishAndConfirm takes each confirm before publishing again.
	confirmListeners.Store(ch, ch.NotifyPublish(make(chan amqp.Confirmation, 1)))
	t.Cleanup(func() { confirmListeners.Delete(ch) })
	return ch
}

// unique returns a name no other test, run or user of a shared broker uses.
func unique(kind string) string {
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("interop.go.%s.%x", kind, suffix)
}

// atEnd runs cleanup on a fresh channel of the admin connection when the test ends.
func atEnd(t *testing.T, what string, cleanup func(*amqp.Channel) error) {
	t.Cleanup(func() {
		ch, err := admin.Channel()
		if err == nil {
			defer ch.Close()
			err = cleanup(ch)
		}
		if err != nil {
			t.Errorf("cleanup: %s: %v", what, err)
		}
	})
}

// declareQueue declares a uniquely named transient queue with args and
// deletes it when the test ends.
func declareQueue(t *testing.T, ch *amqp.Channel, args amqp.Table) string {
	t.Helper()
	name := unique("q")
	if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
		t.Fatalf("declare queue %s %v: %v", name, args, err)
	}
	atEnd(t, "delete queue "+name, func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(name, false, false, false)
		return err
	})
	return name
}

// declareExchange declares a uniquely named transient exchange of kind and
// deletes it when the test ends.
func declareExchange(t *testing.T, ch *amqp.Channel, kind string) string {
	t.Helper()
	name := unique("x")
	if err := ch.ExchangeDeclare(name, kind, false, false, false, false, nil); err != nil {
		t.Fatalf("declare %s exchange %s: %v", kind, name, err)
	}
	atEnd(t, "delete exchange "+name, func(ch *amqp.Channel) error {
		return ch.ExchangeDelete(name, false, false)
	})
	return name
}

func bind(t *testing.T, ch *amqp.Channel, queue, key, exchange string, args amqp.Table) {
	t.Helper()
	if err := ch.QueueBind(queue, key, exchange, false, args); err != nil {
		t.Fatalf("bind %s to %s with %q %v: %v", queue, exchange, key, args, err)
	}
}

func text(body string) amqp.Publishing {
	return amqp.Publishing{Body: []byte(body)}
}

// publishAndConfirm publishes msg on a channel from confirmChannel and
// returns the broker's confirm of it.
func publishAndConfirm(t *testing.T, ch *amqp.Channel, exchange, key string, mandatory bool, msg amqp.Publishing) amqp.Confirmation {
	t.Helper()
	listener, ok := confirmListeners.Load(ch)
	if !ok {
		t.Fatal("publishing with a confirm needs a channel from confirmChannel")
	}
	tag := ch.GetNextPublishSeqNo()
	if err := ch.PublishWithContext(context.Background(), exchange, key, mandatory, false, msg); err != nil {
		t.Fatalf("publish to %q with key %q: %v", exchange, key, err)
	}
	select {
	case confirmation, ok := <-listener.(chan amqp.Confirmation):
		if !ok {
			t.Fatalf("channel closed before the confirm of the publish to %q with key %q", exchange, key)
		}
		assertEqual(t, "delivery tag of the confirm", confirmation.DeliveryTag, tag)
		return confirmation
	case <-time.After(timeout):
		t.Fatalf("no confirm within %v for the publish to %q with key %q", timeout, exchange, key)
	}
	return amqp.Confirmation{} // t.Fatal has stopped the test
}

// publishConfirmed publishes msg on a channel from confirmChannel and waits
// for the broker's ack: once it arrives the message is in every queue it routes to.
func publishConfirmed(t *testing.T, ch *amqp.Channel, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	if !publishAndConfirm(t, ch, exchange, key, false, msg).Ack {
		t.Fatalf("broker nacked the publish to %q with key %q", exchange, key)
	}
}

// publishBodies publishes one confirmed message per body to queue through the default exchange.
func publishBodies(t *testing.T, ch *amqp.Channel, queue string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		publishConfirmed(t, ch, "", queue, text(body))
	}
}

// consume starts a consumer with a unique tag on queue.
func consume(t *testing.T, ch *amqp.Channel, queue string, autoAck bool, args amqp.Table) (string, <-chan amqp.Delivery) {
	t.Helper()
	tag := unique("ctag")
	deliveries, err := ch.Consume(queue, tag, autoAck, false, false, false, args)
	if err != nil {
		t.Fatalf("consume from %s %v: %v", queue, args, err)
	}
	return tag, deliveries
}

// receive waits for the next delivery.
func receive(t *testing.T, deliveries <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-deliveries:
		if ok {
			return d
		}
		t.Fatal("consumer ended (cancelled, or its channel closed) while a delivery was expected")
	case <-time.After(timeout):
		t.Fatalf("no delivery within %v", timeout)
	}
	return amqp.Delivery{} // t.Fatal has stopped the test
}

func receiveN(t *testing.T, deliveries <-chan amqp.Delivery, n int) []amqp.Delivery {
	t.Helper()
	received := make([]amqp.Delivery, n)
	for i := range received {
		received[i] = receive(t, deliveries)
	}
	return received
}

func bodiesOf(deliveries []amqp.Delivery) []string {
	bodies := make([]string, len(deliveries))
	for i, d := range deliveries {
		bodies[i] = string(d.Body)
	}
	return bodies
}

func ack(t *testing.T, d amqp.Delivery, multiple bool) {
	t.Helper()
	if err := d.Ack(multiple); err != nil {
		t.Fatalf("ack %d: %v", d.DeliveryTag, err)
	}
}

// get takes the next ready message from queue with basic.get, failing if there is none.
func get(t *testing.T, ch *amqp.Channel, queue string, autoAck bool) amqp.Delivery {
	t.Helper()
	d, ok, err := ch.Get(queue, autoAck)
	if err != nil {
		t.Fatalf("basic.get from %s: %v", queue, err)
	}
	if !ok {
		t.Fatalf("basic.get from %s: queue is empty", queue)
	}
	return d
}

// drain removes every ready message from queue with auto-acked basic.get and
// returns their bodies in order. basic.get reaches the queue after everything
// this channel sent before it (publishes, acks, rejects), so the result is exact.
func drain(t *testing.T, ch *amqp.Channel, queue string) []string {
	t.Helper()
	bodies := []string{}
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get from %s: %v", queue, err)
		}
		if !ok {
			return bodies
		}
		bodies = append(bodies, string(d.Body))
	}
}

// readyCount is the queue's message count from a passive declare: messages
// ready for delivery, not those delivered and awaiting an ack.
func readyCount(t *testing.T, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare of %s: %v", queue, err)
	}
	return q.Messages
}

// watchClose returns a channel that receives the error the broker closes ch with.
func watchClose(ch *amqp.Channel) <-chan *amqp.Error {
	return ch.NotifyClose(make(chan *amqp.Error, 1))
}

// expectClosed waits for the broker to close ch with exactly code and reason.
func expectClosed(t *testing.T, ch *amqp.Channel, closes <-chan *amqp.Error, code int, reason string) {
	t.Helper()
	select {
	case err, ok := <-closes:
		if !ok {
			t.Fatalf("channel closed without an error, want %d %q", code, reason)
		}
		assertBrokerError(t, err, code, reason)
	case <-time.After(timeout):
		t.Fatalf("channel still open after %v, want it closed with %d %q", timeout, code, reason)
	}
	if !ch.IsClosed() {
		t.Error("the client still reports the channel open")
	}
}

// assertBrokerError checks that err is the broker's close with exactly code and reason.
func assertBrokerError(t *testing.T, err error, code int, reason string) {
	t.Helper()
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) {
		t.Fatalf("got error %v (%T), want the broker's %d %q", err, err, code, reason)
	}
	if amqpErr.Code != code || amqpErr.Reason != reason || !amqpErr.Server {
		t.Fatalf("got %d %q (from server: %v), want %d %q", amqpErr.Code, amqpErr.Reason, amqpErr.Server, code, reason)
	}
}

func assertEqual(t *testing.T, what string, got, want interface{}) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %#v, want %#v", what, got, want)
	}
}

// field returns table[key] as a T, failing if it is missing or of another type.
func field[T any](t *testing.T, table amqp.Table, key string) T {
	t.Helper()
	value, ok := table[key]
	if !ok {
		t.Fatalf("no %q in %v", key, table)
	}
	typed, ok := value.(T)
	if !ok {
		t.Fatalf("%q is %T (%v), want %T", key, value, value, typed)
	}
	return typed
}

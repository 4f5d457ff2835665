package interop

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The capabilities RabbitMQ (3.x and 4.x alike) advertises in connection.start;
// clients check them before using the matching extension.
var rabbitMQCapabilities = amqp.Table{
	"publisher_confirms":           true,
	"exchange_exchange_bindings":   true,
	"basic.nack":                   true,
	"consumer_cancel_notify":       true,
	"connection.blocked":           true,
	"consumer_priorities":          true,
	"authentication_failure_close": true,
	"per_consumer_qos":             true,
	"direct_reply_to":              true,
}

func TestServerPropertiesAndCapabilities(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	assertEqual(t, "protocol version", [2]int{conn.Major, conn.Minor}, [2]int{0, 9})
	assertEqual(t, "locales", conn.Locales, []string{"en_US"})
	for _, key := range []string{"product", "version", "platform", "copyright", "information", "cluster_name"} {
		if field[string](t, conn.Properties, key) == "" {
			t.Errorf("server property %q is empty", key)
		}
	}
	assertEqual(t, "capabilities", field[amqp.Table](t, conn.Properties, "capabilities"), rabbitMQCapabilities)
}

func TestTuneTakesTheServerProposalWhenTheClientHasNone(t *testing.T) {
	t.Parallel()
	// Zero means "no preference": amqp091-go then adopts the server's value.
	conn := connectWith(t, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	// RabbitMQ's defaults, unchanged in 4.x.
	assertEqual(t, "heartbeat", conn.Config.Heartbeat, 60*time.Second)
	assertEqual(t, "frame_max", conn.Config.FrameSize, 131072)
	assertEqual(t, "channel_max", conn.Config.ChannelMax, 2047)
}

func TestTuneAcceptsLowerClientLimits(t *testing.T) {
	t.Parallel()
	conn := connectWith(t, amqp.Config{
		Heartbeat:  7 * time.Second,
		FrameSize:  4096,
		ChannelMax: 8,
		Dial:       amqp.DefaultDial(timeout),
	})
	assertEqual(t, "heartbeat", conn.Config.Heartbeat, 7*time.Second)
	assertEqual(t, "frame_max", conn.Config.FrameSize, 4096)
	assertEqual(t, "channel_max", conn.Config.ChannelMax, 8)

	// A body of many frames' worth travels split into body frames both ways.
	ch := confirmChannel(t, conn)
	queue := declareQueue(t, ch, nil)
	body := bytes.Repeat([]byte("0123456789abcdef"), 3000)
	publishConfirmed(t, ch, "", queue, amqp.Publishing{Body: body})
	if got := get(t, ch, queue, true).Body; !bytes.Equal(got, body) {
		t.Fatalf("got a %d-byte body, want the %d bytes published", len(got), len(body))
	}
}

func TestHeartbeatsKeepAnIdleConnectionOpen(t *testing.T) {
	t.Parallel()
	// amqp091-go sends a heartbeat every half interval and drops the connection
	// when nothing arrives for 1.5 intervals, so the broker must send its own.
	conn := connectWith(t, amqp.Config{Heartbeat: 2 * time.Second, Dial: amqp.DefaultDial(timeout)})
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	// A frame from the broker arms the client's read deadline.
	ch := openChannel(t, conn)
	select {
	case err := <-closes:
		t.Fatalf("idle connection closed: %v", err)
	case <-time.After(5 * time.Second):
	}
	declareQueue(t, ch, nil)
}

// recordingDial dials like amqp.DefaultDial and keeps a copy of every byte
// the broker sends, so a test can look at frames the client does not expose.
type recordingDial struct {
	mu       sync.Mutex
	received bytes.Buffer
}

func (r *recordingDial) dial(network, addr string) (net.Conn, error) {
	conn, err := amqp.DefaultDial(timeout)(network, addr)
	if err != nil {
		return nil, err
	}
	return &recordedConn{Conn: conn, recorder: r}, nil
}

func (r *recordingDial) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.received.Bytes()...)
}

type recordedConn struct {
	net.Conn
	recorder *recordingDial
}

func (c *recordedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.recorder.mu.Lock()
	c.recorder.received.Write(p[:n])
	c.recorder.mu.Unlock()
	return n, err
}

// method is a method frame as the broker sent it.
type method struct {
	classID, methodID uint16
	arguments         []byte
}

var (
	connectionStart = [2]uint16{10, 10}
	connectionTune  = [2]uint16{10, 30}
	connectionClose = [2]uint16{10, 50}
)

// methodsIn splits recorded broker output into frames and returns its methods.
func methodsIn(t *testing.T, data []byte) []method {
	t.Helper()
	var methods []method
	for len(data) > 0 {
		// type (1 byte), channel (2), payload size (4), payload, frame-end (1)
		if len(data) < 8 || len(data) < 8+int(binary.BigEndian.Uint32(data[3:7])) {
			t.Fatalf("truncated frame in the broker's output: %q", data)
		}
		payload := data[7 : 7+binary.BigEndian.Uint32(data[3:7])]
		if data[0] == 1 {
			methods = append(methods, method{
				classID:   binary.BigEndian.Uint16(payload[0:2]),
				methodID:  binary.BigEndian.Uint16(payload[2:4]),
				arguments: payload[4:],
			})
		}
		data = data[8+len(payload):]
	}
	return methods
}

func methodIDs(methods []method) [][2]uint16 {
	ids := make([][2]uint16, len(methods))
	for i, m := range methods {
		ids[i] = [2]uint16{m.classID, m.methodID}
	}
	return ids
}

// closeReply decodes the reply-code and reply-text of a connection.close.
func closeReply(m method) (int, string) {
	code := int(binary.BigEndian.Uint16(m.arguments[0:2]))
	length := int(m.arguments[2])
	return code, string(m.arguments[3 : 3+length])
}

func urlWith(t *testing.T, change func(*amqp.URI)) string {
	t.Helper()
	uri, err := amqp.ParseURI(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	change(&uri)
	return uri.String()
}

// dialRecorded dials url and returns every method the broker sent, and the error.
func dialRecorded(t *testing.T, url string) ([]method, error) {
	t.Helper()
	recorder := &recordingDial{}
	config := clientConfig()
	config.Dial = recorder.dial
	conn, err := amqp.DialConfig(url, config)
	if err == nil {
		conn.Close()
	}
	return methodsIn(t, recorder.bytes()), err
}

func TestBadCredentialsAreRefused(t *testing.T) {
	t.Parallel()
	cases := map[string]func(*amqp.URI){
		"wrong password": func(uri *amqp.URI) { uri.Password = "wrong-password" },
		"unknown user":   func(uri *amqp.URI) { uri.Username = unique("user") },
	}
	for name, change := range cases {
		change := change
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			methods, err := dialRecorded(t, urlWith(t, change))
			if err != amqp.ErrCredentials {
				t.Fatalf("got %v, want amqp.ErrCredentials", err)
			}
			// amqp091-go does not declare the authentication_failure_close
			// capability, so RabbitMQ closes the socket without a
			// connection.close 403 (which clients that declare it get).
			assertEqual(t, "methods from the broker", methodIDs(methods), [][2]uint16{connectionStart})
		})
	}
}

func TestUnknownVhostIsRefused(t *testing.T) {
	t.Parallel()
	missing := unique("vhost")
	methods, err := dialRecorded(t, urlWith(t, func(uri *amqp.URI) { uri.Vhost = missing }))
	if err != amqp.ErrVhost {
		t.Fatalf("got %v, want amqp.ErrVhost", err)
	}
	// The client reports its own error text; the broker's is on the wire.
	assertEqual(t, "methods from the broker", methodIDs(methods),
		[][2]uint16{connectionStart, connectionTune, connectionClose})
	code, text := closeReply(methods[2])
	assertEqual(t, "connection.close", [2]interface{}{code, text},
		[2]interface{}{530, "NOT_ALLOWED - vhost " + missing + " not found"})
}

func TestChannelMaxBoundsTheChannelNumbers(t *testing.T) {
	t.Parallel()
	config := clientConfig()
	config.ChannelMax = 3
	conn := connectWith(t, config)
	assertEqual(t, "channel_max", conn.Config.ChannelMax, 3)
	// Channels 1 to 3 are all usable: channel_max itself is a valid number.
	for i := 1; i <= 3; i++ {
		ch := openChannel(t, conn)
		if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
			t.Fatalf("channel %d of 3: %v", i, err)
		}
	}
	if _, err := conn.Channel(); err != amqp.ErrChannelMax {
		t.Fatalf("a fourth channel: got %v, want amqp.ErrChannelMax", err)
	}
}

func TestConnectionBlockedNotificationsCanBeRegistered(t *testing.T) {
	t.Parallel()
	conn := connect(t)
	// The broker sends connection.blocked only to clients that declare the
	// capability (amqp091-go does) and only under a resource alarm, which a
	// test must not raise on a shared broker: here nothing may arrive.
	capabilities := field[amqp.Table](t, conn.Properties, "capabilities")
	assertEqual(t, "connection.blocked capability", capabilities["connection.blocked"], true)
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	ch := confirmChannel(t, conn)
	queue := declareQueue(t, ch, nil)
	publishConfirmed(t, ch, "", queue, text("while registered"))
	select {
	case b := <-blocked:
		t.Fatalf("unexpected connection.blocked notification %+v", b)
	default:
	}
}

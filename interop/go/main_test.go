// Package interop tests a broker (Warren, or RabbitMQ as the reference)
// through the stock amqp091-go client over real sockets.
package interop

import (
	"fmt"
	"os"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

var (
	// brokerURL names the broker under test (AMQP_URL).
	brokerURL string
	// vhost is the virtual host brokerURL names; RabbitMQ quotes it in error texts.
	vhost string
	// admin is a connection of its own for cleanup, which must work even when
	// a test's channels were closed by the error it provoked.
	admin *amqp.Connection
)

func TestMain(m *testing.M) {
	brokerURL = os.Getenv("AMQP_URL")
	if brokerURL == "" {
		fmt.Fprintln(os.Stderr, "AMQP_URL is not set; run the suite through interop/run")
		os.Exit(2)
	}
	uri, err := amqp.ParseURI(brokerURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "AMQP_URL %q: %v\n", brokerURL, err)
		os.Exit(2)
	}
	vhost = uri.Vhost
	admin, err = amqp.DialConfig(brokerURL, clientConfig())
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot connect to %s: %v\n", brokerURL, err)
		os.Exit(1)
	}
	code := m.Run()
	admin.Close()
	os.Exit(code)
}

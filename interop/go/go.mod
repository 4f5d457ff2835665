module warren/interop/go

go 1.19

require github.com/rabbitmq/amqp091-go v1.5.0

// Debian's golang-github-rabbitmq-amqp091-go-dev package, so that the suite
// builds without a module proxy.
replace github.com/rabbitmq/amqp091-go => /usr/share/gocode/src/github.com/rabbitmq/amqp091-go

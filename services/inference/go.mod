module github.com/parley-chat/parley/services/inference

go 1.26.0

require (
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/nats-io/nats.go v1.55.0
	github.com/parley-chat/parley/libs/events v0.0.0
	github.com/sethvargo/go-retry v0.5.0
	golang.org/x/sync v0.25.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/parley-chat/parley/libs/events => ../../libs/events

replace github.com/parley-chat/parley/libs/devstack => ../../libs/devstack

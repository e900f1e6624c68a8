module github.com/parley-chat/parley/tests

go 1.26.0

require github.com/parley-chat/parley/libs/events v0.0.0

require github.com/parley-chat/parley/libs/devstack v0.0.0

require github.com/parley-chat/parley/db v0.0.0

require github.com/parley-chat/parley/services/auth v0.0.0

require github.com/parley-chat/parley/services/chat v0.0.0

require github.com/parley-chat/parley/services/inference v0.0.0

require github.com/parley-chat/parley/services/gateway v0.0.0

require github.com/parley-chat/parley/libs/ops v0.0.0

require github.com/kelseyhightower/envconfig v1.4.0 // indirect

require (
	github.com/compose-spec/compose-go/v2 v2.16.0
	github.com/distribution/reference v0.6.0 // indirect
	github.com/docker/go-connections v0.8.2 // indirect
	github.com/docker/go-units v0.5.0 // indirect
	github.com/go-viper/mapstructure/v2 v2.4.0 // indirect
	github.com/mattn/go-shellwords v1.0.12 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.1 // indirect
	github.com/sirupsen/logrus v1.10.1 // indirect
	github.com/xhit/go-str2duration/v2 v2.1.0 // indirect
	go.yaml.in/yaml/v4 v4.0.0-rc.4
	golang.org/x/text v0.44.0 // indirect
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/antithesishq/antithesis-sdk-go v0.9.0-default-no-op // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/go-chi/chi/v5 v5.5.0 // indirect
	github.com/go-chi/httprate v0.16.1 // indirect
	github.com/go-sql-driver/mysql v1.10.1
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/google/go-cmp v0.7.0
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/google/uuid v1.6.0
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/klauspost/cpuid/v2 v2.2.10 // indirect
	github.com/mfridman/interpolate v0.0.2 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nats-io/jwt/v2 v2.8.3 // indirect
	github.com/nats-io/nats-server/v2 v2.15.3
	github.com/nats-io/nats.go v1.55.0
	github.com/nats-io/nkeys v0.4.17
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/pressly/goose/v3 v3.30.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.23.0 // indirect
	github.com/sethvargo/go-retry v0.5.0 // indirect
	github.com/zeebo/xxh3 v1.0.2 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/time v0.16.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/parley-chat/parley/libs/events => ../libs/events

replace github.com/parley-chat/parley/libs/devstack => ../libs/devstack

replace github.com/parley-chat/parley/db => ../db

replace github.com/parley-chat/parley/services/auth => ../services/auth

replace github.com/parley-chat/parley/services/chat => ../services/chat

replace github.com/parley-chat/parley/services/inference => ../services/inference

replace github.com/parley-chat/parley/services/gateway => ../services/gateway

replace github.com/parley-chat/parley/libs/ops => ../libs/ops

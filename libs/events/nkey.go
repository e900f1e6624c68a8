package events

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// NATSNKey is the NKey credential of a service's NATS connection. With it the server
// knows the service by its public key (an `nkey:` user in its authorization block,
// instead of user and password) and never holds a secret: the client signs the
// server's challenge with the seed. A service's Config embeds it as a named field,
// read unprefixed like NATSTLS.
type NATSNKey struct {
	// SeedFile is a file holding the service's NKey user seed ("SU..."), e.g. from
	// `nk -gen user -pubout` (github.com/nats-io/nkeys/nk). Empty: no NKey; the URL's
	// user:password, if any, is used.
	SeedFile string `envconfig:"NATS_NKEY_SEED_FILE"`
}

// Options returns the nats.Go options for the credential (none when unset). The seed
// file is read now (to check it and derive the public key) and again at each connect.
func (c NATSNKey) Options() ([]nats.Option, error) {
	if c.SeedFile == "" {
		return nil, nil
	}
	opt, err := nats.NkeyOptionFromSeed(c.SeedFile)
	if err != nil {
		return nil, fmt.Errorf("nats nkey seed (NATS_NKEY_SEED_FILE): %w", err)
	}
	return []nats.Option{opt}, nil
}

// NATSOptions returns the connection options of a service's NATS settings: TLS and
// the NKey credential.
func NATSOptions(tls NATSTLS, nkey NATSNKey) ([]nats.Option, error) {
	opts, err := tls.Options()
	if err != nil {
		return nil, err
	}
	nk, err := nkey.Options()
	if err != nil {
		return nil, err
	}
	return append(opts, nk...), nil
}

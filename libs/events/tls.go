package events

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// NATSTLS are the TLS settings of a service's NATS connection. A service's Config
// embeds it as a named field (read unprefixed, like db.Config) and passes
// Options() to Connect. With none set, the URL decides: nats:// is plain, tls:// is
// TLS verified against the system roots (SSL_CERT_FILE / SSL_CERT_DIR can add a CA).
type NATSTLS struct {
	// CA is a PEM file of the CAs that sign the server's certificate (verified, with
	// the URL's host as the server name). Setting it turns TLS on.
	CA string `envconfig:"NATS_TLS_CA"`
	// Cert and Key are the client certificate and key (PEM files) for servers that
	// require mutual TLS (tls { verify: true }). Both or neither.
	Cert string `envconfig:"NATS_TLS_CERT"`
	Key  string `envconfig:"NATS_TLS_KEY"`
}

// Enabled reports whether any TLS setting is given.
func (c NATSTLS) Enabled() bool { return c.CA != "" || c.Cert != "" || c.Key != "" }

// Options returns the nats.Go options for these settings (none when nothing is set).
// The files must exist; their contents are read when connecting.
func (c NATSTLS) Options() ([]nats.Option, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, errors.New("NATS_TLS_CERT and NATS_TLS_KEY must be set together")
	}
	var opts []nats.Option
	for _, f := range []string{c.CA, c.Cert, c.Key} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("nats tls file: %w", err)
		}
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if c.Cert != "" {
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	// TLS 1.2 at least (nats.go's default too), verified: never InsecureSkipVerify.
	return opts, nil
}

// RedactURL returns a NATS URL (or a comma-separated list of them) with any password
// replaced, for logs and error messages.
func RedactURL(raw string) string {
	out := ""
	for i, part := range strings.Split(raw, ",") {
		if i > 0 {
			out += ","
		}
		u, err := url.Parse(part)
		if err != nil {
			out += "<unparsable url>"
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		} else if u.User != nil && u.User.Username() != "" {
			// A token in the user part (nats://token@host) is a secret too.
			u.User = url.User("REDACTED")
		}
		out += u.String()
	}
	return out
}

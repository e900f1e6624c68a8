package security_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/auth"
	"github.com/parley-chat/parley/tests/internal/e2e"
	"github.com/parley-chat/parley/tests/security/internal/testcerts"
)

// TestNATSTLS: with the server requiring mutual TLS (deploy/nats/nats.conf's users plus
// a tls block), events.Connect with NATSTLS options (NATS_TLS_CA, NATS_TLS_CERT,
// NATS_TLS_KEY) connects over verified TLS; without the client certificate, without the
// CA, or in plain text it does not get in.
func TestNATSTLS(t *testing.T) {
	certs, err := testcerts.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ns, users := startSecureNATS(t, func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CaFile: certs.CA, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, true, 2
	})
	url := strings.Replace(userURL(ns, "auth", users["auth"]), "nats://", "tls://", 1)
	opts, err := events.NATSTLS{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := events.Connect(url, "auth", slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	e2e.Eventually(t, 5*time.Second, "connected over TLS", func() error {
		if !nc.IsConnected() {
			return nats.ErrConnectionClosed
		}
		return nil
	})
	st, err := nc.TLSConnectionState()
	if err != nil || !st.HandshakeComplete || st.Version < tls.VersionTLS12 || len(st.PeerCertificates) == 0 {
		t.Fatalf("tls state: %+v %v", st, err)
	}
	// The permissions still apply over TLS: auth's own inbox yes, chat's no.
	if _, err := nc.SubscribeSync("_INBOX_auth.x"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	caOnly, _ := events.NATSTLS{CA: certs.CA}.Options()
	for name, o := range map[string][]nats.Option{
		"no client certificate": caOnly,
		"no CA (system roots)":  {nats.ClientCert(certs.ClientCert, certs.ClientKey)},
	} {
		c, err := nats.Connect(url, append(o, nats.Timeout(2*time.Second))...)
		if err == nil {
			c.Close()
			t.Errorf("%s: connected", name)
		}
	}
	plain := strings.Replace(url, "tls://", "nats://", 1)
	if c, err := nats.Connect(plain, nats.Timeout(2*time.Second)); err == nil {
		c.Close()
		t.Errorf("plain text: connected")
	}
	if _, err := (events.NATSTLS{Cert: certs.ClientCert}).Options(); err == nil {
		t.Error("a certificate without its key was accepted")
	}
	nc.Close()

	// A service configured with NATS_TLS_CA/CERT/KEY (auth here) connects over mutual TLS.
	d := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- auth.Run(ctx, auth.Config{
			NATSURL: url, NATSTLS: events.NATSTLS{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey},
			DB:             db.Config{Username: d.User, Password: d.Password, Host: d.Host, Port: d.Port, Name: d.Name, MaxOpen: 4},
			RequestTimeout: 5 * time.Second, AccessTokenTTL: 10 * time.Minute, SessionIdleTimeout: 30 * time.Minute,
			SessionAbsoluteTimeout: time.Hour, Argon2MemoryKiB: 1024, Argon2Time: 1, Argon2Threads: 1, HashQueue: 4,
		}, auth.Deps{Logger: slog.New(slog.DiscardHandler)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("auth.Run: %v", err)
		}
	}()
	e2e.Eventually(t, 15*time.Second, "auth connected over mutual TLS", func() error {
		cz, err := ns.Connz(&server.ConnzOptions{Username: true})
		if err != nil {
			return err
		}
		for _, c := range cz.Conns {
			if c.Name == "auth" && c.AuthorizedUser == "auth" && c.TLSVersion != "" && len(c.TLSPeerCerts) > 0 {
				return nil
			}
		}
		return fmt.Errorf("no auth connection with a client certificate among %d", len(cz.Conns))
	})
}

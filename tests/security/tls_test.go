package security_test

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/events"
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
	eventually(t, 5*time.Second, "connected over TLS", func() error {
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
}

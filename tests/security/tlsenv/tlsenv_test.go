// Package tlsenv_test proves that a Parley service connects to NATS over verified TLS
// with no code or configuration of its own: NATS_URL=tls://... and the CA added to the
// process's trust roots through SSL_CERT_FILE (read once per process, hence a package
// of its own whose TestMain sets it before anything uses TLS).
package tlsenv_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/services/inference"
	"github.com/parley-chat/parley/tests/security/internal/testcerts"
)

var certs testcerts.Files

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-tlsenv")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	certs, err = testcerts.Generate(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Before any TLS use in this process: the system pool is loaded once.
	os.Setenv("SSL_CERT_FILE", certs.CA)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func TestServiceOverTLS(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	conf := filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "nats", "nats.conf")
	pass := map[string]string{}
	for _, svc := range []string{"gateway", "auth", "chat", "inference"} {
		pass[svc] = fmt.Sprintf("pw-%s-%d", svc, time.Now().UnixNano())
		t.Setenv(strings.ToUpper(svc)+"_NATS_PASSWORD", pass[svc])
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir = "127.0.0.1", server.RANDOM_PORT, 0, t.TempDir()
	opts.JetStream, opts.NoLog, opts.NoSigs, opts.SyncAlways = true, true, true, false
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 2
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	defer ns.Shutdown()

	u, _ := url.Parse(ns.ClientURL())
	u.Scheme, u.User = "tls", url.UserPassword("inference", pass["inference"])
	hf := fakehf.New(fakehf.Options{})
	defer hf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- inference.Run(ctx, inference.Config{NATSURL: u.String(), HFToken: hf.Token(), HFBaseURL: hf.BaseURL(),
			HFModel: "mistralai/Mistral-7B-Instruct-v0.3", MaxTokens: 64, ShutdownTimeout: 2 * time.Second},
			inference.Deps{Logger: slog.New(slog.DiscardHandler)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("inference.Run: %v", err)
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cz, err := ns.Connz(&server.ConnzOptions{Username: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cz.Conns {
			if c.Name == "inference" && c.AuthorizedUser == "inference" {
				if c.TLSVersion == "" {
					t.Fatalf("inference connected without TLS: %+v", c)
				}
				t.Logf("inference connected as %s over TLS %s (%s)", c.AuthorizedUser, c.TLSVersion, c.TLSCipher)
				return
			}
		}
		if time.Now().After(deadline) {
			for _, c := range cz.Conns {
				t.Logf("connection: %+v", *c)
			}
			t.Fatal("inference did not connect over TLS")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package security_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/auth"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/gateway"
	"github.com/parley-chat/parley/services/inference"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// nkeyUsers are the services' NKey credentials: a seed file each and its public key.
type nkeyUsers map[string]struct{ seedFile, public string }

// startNKeyNATS starts NATS with deploy/nats/nats.conf's per-service permissions, each
// service an NKey user instead of a user with a password (the deployment the security
// bar asks for: the server holds no secret).
func startNKeyNATS(t *testing.T) (*server.Server, nkeyUsers) {
	t.Helper()
	dir := t.TempDir()
	users := nkeyUsers{}
	var nk []*server.NkeyUser
	ns, _ := startSecureNATS(t, func(o *server.Options) {
		for _, u := range o.Users {
			kp, err := nkeys.CreateUser()
			if err != nil {
				t.Fatal(err)
			}
			seed, _ := kp.Seed()
			pub, _ := kp.PublicKey()
			f := filepath.Join(dir, u.Username+".nk")
			if err := os.WriteFile(f, seed, 0o600); err != nil {
				t.Fatal(err)
			}
			users[u.Username] = struct{ seedFile, public string }{f, pub}
			nk = append(nk, &server.NkeyUser{Nkey: pub, Permissions: u.Permissions})
		}
		o.Users, o.Nkeys = nil, nk
	})
	if len(users) != 4 {
		t.Fatalf("deploy/nats/nats.conf has users %v, want the four services", users)
	}
	return ns, users
}

// TestNATSNKeys: every service signs in to NATS with its NKey seed
// (NATS_NKEY_SEED_FILE) and the product works end to end under nats.conf's
// permissions; the server sees each service as its own public key, and a client
// without a seed, with an unknown seed, or with a password gets nowhere.
func TestNATSNKeys(t *testing.T) {
	ns, users := startNKeyNATS(t)
	seed := func(svc string) events.NATSNKey { return events.NATSNKey{SeedFile: users[svc].seedFile} }
	s := e2e.New(t, e2e.Options{
		NATSURL:   ns.ClientURL(),
		Auth:      func(c *auth.Config) { c.NATSNKey = seed("auth") },
		Chat:      func(c *chat.Config) { c.NATSNKey = seed("chat") },
		Inference: func(_ int, c *inference.Config) { c.NATSNKey = seed("inference") },
		Gateway:   func(_ int, c *gateway.Config) { c.NATSNKey = seed("gateway") },
	})

	u := s.User("nkey_ann")
	c := u.CreateChat("")
	sent := u.Send(c.ID, "hello over nkeys")
	if a := e2e.Collect(t, u.Stream(sent.AssistantMessage.ID)); a.Final.Status != events.StatusComplete || a.Final.Content == "" {
		t.Fatalf("answer: %+v", a.Final)
	}

	// Each service is connected as its own key.
	cz, err := ns.Connz(&server.ConnzOptions{Username: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, conn := range cz.Conns {
		for svc, nk := range users {
			if conn.AuthorizedUser == nk.public {
				seen[svc] = true
			}
		}
	}
	for svc := range users {
		if !seen[svc] {
			t.Errorf("no connection of %s as its NKey %s", svc, users[svc].public)
		}
	}

	// Nobody else gets in.
	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	strangerFile := filepath.Join(t.TempDir(), "stranger.nk")
	if err := os.WriteFile(strangerFile, strangerSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	strangerOpts, err := events.NATSNKey{SeedFile: strangerFile}.Options()
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]nats.Option{
		"no credential": nil,
		"unknown seed":  strangerOpts,
		"a password":    {nats.UserInfo("gateway", "guess")},
		"a public key":  {nats.Nkey(users["gateway"].public, func([]byte) ([]byte, error) { return nil, fmt.Errorf("no seed") })},
	} {
		if nc, err := nats.Connect(ns.ClientURL(), append(opts, nats.Timeout(2*time.Second))...); err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		}
	}
	if _, err := (events.NATSNKey{SeedFile: filepath.Join(t.TempDir(), "missing.nk")}).Options(); err == nil {
		t.Error("a missing seed file was accepted")
	}
}

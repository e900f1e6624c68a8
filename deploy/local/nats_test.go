package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/libs/devstack/natsserver"
)

func TestSecureNATS(t *testing.T) {
	dir := t.TempDir()
	conf, pw, err := secureNATS(filepath.Join("..", "nats", "nats.conf"), dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(conf)
	if strings.Contains(string(raw), "$GATEWAY_NATS_PASSWORD") || strings.Contains(string(raw), "http_port") {
		t.Errorf("rendered config still has variables or the monitoring port:\n%s", raw)
	}
	if st, _ := os.Stat(filepath.Join(dir, "nats-passwords.json")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("passwords file: %v", st)
	}
	// The passwords stay the same on the next start.
	if _, again, err := secureNATS(filepath.Join("..", "nats", "nats.conf"), dir); err != nil || again["chat"] != pw["chat"] {
		t.Errorf("second start: %v, same password %v", err, again["chat"] == pw["chat"])
	}
	ns, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), ConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(withUser(ns.ClientURL(), "gateway", pw["gateway"]))
	if err != nil {
		t.Fatalf("gateway user: %v", err)
	}
	nc.Close()
	if nc, err := nats.Connect(ns.ClientURL()); err == nil {
		nc.Close()
		t.Error("connected without credentials")
	}
	if nc, err := nats.Connect(withUser(ns.ClientURL(), "gateway", pw["chat"])); err == nil {
		nc.Close()
		t.Error("connected as gateway with chat's password")
	}
}

func TestNATSSettingsFromEnvironment(t *testing.T) {
	t.Setenv("NATS_NKEY_SEED_FILE", "/etc/parley/nats.nk")
	t.Setenv("NATS_TLS_CA", "/etc/parley/nats-ca.pem")
	t.Setenv("NATS_TLS_CERT", "/etc/parley/nats.pem")
	t.Setenv("NATS_TLS_KEY", "/etc/parley/nats-key.pem")
	_, svc, err := LoadConfigs()
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"auth": svc.Auth.NATSTLS.CA, "gateway": svc.Gateway.NATSTLS.CA} {
		if got != "/etc/parley/nats-ca.pem" {
			t.Errorf("%s NATSTLS.CA = %q", name, got)
		}
	}
	if svc.Auth.NATSTLS.Key != "/etc/parley/nats-key.pem" {
		t.Errorf("auth NATSTLS = %+v", svc.Auth.NATSTLS)
	}
	for name, got := range map[string]string{
		"auth": svc.Auth.NATSNKey.SeedFile, "chat": svc.Chat.NATSNKey.SeedFile,
		"inference": svc.Inference.NATSNKey.SeedFile, "gateway": svc.Gateway.NATSNKey.SeedFile,
	} {
		if got != "/etc/parley/nats.nk" {
			t.Errorf("%s NATSNKey.SeedFile = %q", name, got)
		}
	}
}

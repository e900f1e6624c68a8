package local

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// natsServices are the NATS users of deploy/nats/nats.conf, one per service.
var natsServices = []string{"gateway", "auth", "chat", "inference"}

// secureNATS prepares the embedded server's configuration for PARLEY_NATS_SECURE:
// the users and permissions of the compose file (src), each with a random password
// kept in dataDir/nats-passwords.json (0600, made once), written as
// dataDir/nats-secure.conf (0600) without the monitoring port, which the embedded
// server does not need. It returns that file and the passwords by service.
func secureNATS(src, dataDir string) (string, map[string]string, error) {
	raw, err := os.ReadFile(src)
	if err != nil {
		return "", nil, fmt.Errorf("read nats config (PARLEY_NATS_CONFIG): %w", err)
	}
	pwFile := filepath.Join(dataDir, "nats-passwords.json")
	pw := map[string]string{}
	if b, err := os.ReadFile(pwFile); err == nil {
		if err := json.Unmarshal(b, &pw); err != nil {
			return "", nil, fmt.Errorf("read %s: %w", pwFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("read %s: %w", pwFile, err)
	}
	changed := false
	for _, svc := range natsServices {
		if pw[svc] == "" {
			b := make([]byte, 24)
			if _, err := rand.Read(b); err != nil {
				return "", nil, fmt.Errorf("generate nats password: %w", err)
			}
			pw[svc], changed = hex.EncodeToString(b), true
		}
	}
	if changed {
		b, _ := json.MarshalIndent(pw, "", "  ")
		if err := os.WriteFile(pwFile, b, 0o600); err != nil {
			return "", nil, fmt.Errorf("write %s: %w", pwFile, err)
		}
	}
	text := string(raw)
	for _, svc := range natsServices {
		ref := "$" + strings.ToUpper(svc) + "_NATS_PASSWORD"
		if !strings.Contains(text, ref) {
			return "", nil, fmt.Errorf("%s does not reference %s", src, ref)
		}
		text = strings.ReplaceAll(text, ref, `"`+pw[svc]+`"`)
	}
	text = regexp.MustCompile(`(?m)^\s*http_port\s*:.*$`).ReplaceAllString(text, "")
	out := filepath.Join(dataDir, "nats-secure.conf")
	if err := os.WriteFile(out, []byte(text), 0o600); err != nil {
		return "", nil, fmt.Errorf("write %s: %w", out, err)
	}
	return out, pw, nil
}

// withUser returns a NATS URL carrying a user and password.
func withUser(raw, user, password string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

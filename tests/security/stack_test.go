// Package security_test proves the security properties of the whole product (see
// docs/security.md): it runs Parley the way docker compose does, with the NATS users and
// permissions of deploy/nats/nats.conf and the MySQL users and grants of
// deploy/mysql/init.sql, each service connecting as itself, and attacks it through the
// gateway's HTTP API and straight over NATS and MySQL.
package security_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/fakehf"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/auth"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/gateway"
	"github.com/parley-chat/parley/services/inference"
	"github.com/parley-chat/parley/tests/internal/e2e"
)

// password is the password of every test user.
const password = e2e.Password

// model is the model every chat uses.
const model = e2e.Model

// spaIndex is the index page the gateway serves in these tests.
const spaIndex = `<!doctype html><html><head><meta charset="utf-8"><title>Parley</title>` +
	`<script type="module" src="/assets/app.js"></script></head><body><div id="root"></div></body></html>`

// repoRoot is the repository's root directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// natsUsers are the services' NATS credentials, as compose passes them.
type natsUsers map[string]string // service -> password

// startSecureNATS starts an embedded NATS server with the authorization block of
// deploy/nats/nats.conf (the file compose uses), with random passwords for the four
// users. The port, the store and monitoring are the test's; adjust may change the rest.
func startSecureNATS(t *testing.T, adjust func(*server.Options)) (*server.Server, natsUsers) {
	t.Helper()
	users := natsUsers{}
	for _, svc := range []string{"gateway", "auth", "chat", "inference"} {
		users[svc] = randomHex(16)
		t.Setenv(strings.ToUpper(svc)+"_NATS_PASSWORD", users[svc])
	}
	opts, err := server.ProcessConfigFile(filepath.Join(repoRoot(t), "deploy", "nats", "nats.conf"))
	if err != nil {
		t.Fatalf("read deploy/nats/nats.conf: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT, 0
	opts.StoreDir = t.TempDir()
	opts.JetStream, opts.NoLog, opts.NoSigs = true, true, true
	// fsync before every ack is the deployment's choice; the tests do not need it.
	opts.SyncInterval, opts.SyncAlways = 0, false
	if adjust != nil {
		adjust(opts) // TLS, NKey users...
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("create nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns, users
}

// userURL is a NATS URL with a service's credentials.
func userURL(ns *server.Server, user, pass string) string {
	u, _ := url.Parse(ns.ClientURL())
	u.User = url.UserPassword(user, pass)
	return u.String()
}

// dbUsers are the per-service MySQL logins made from deploy/mysql/init.sql.
type dbUsers struct {
	Auth, Chat db.Config
	// Admin is a handle on the test database with every privilege (observations only).
	Admin *sql.DB
	Name  string
}

// rootOnTestServer opens a root connection to the test server over its unix socket
// (the TEST_MYSQL_DSN user has every privilege but GRANT OPTION, so it cannot grant).
func rootOnTestServer(t *testing.T, admin *sql.DB) *sql.DB {
	t.Helper()
	var socket string
	if err := admin.QueryRow("SELECT @@socket").Scan(&socket); err != nil || socket == "" {
		t.Fatalf("find the test server's socket: %v", err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", socket
	root, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Ping(); err != nil {
		_ = root.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("no root access to the test server over %s: %v", socket, err)
		}
		t.Skipf("no root access to the test server over %s (needed to GRANT): %v", socket, err)
	}
	t.Cleanup(func() { _ = root.Close() })
	return root
}

// initSQL returns deploy/mysql/init.sql as statements for schema name with the given
// users and passwords in place of compose's. Every replaced token must be there, so a
// change of the file that this adaptation does not know fails the test.
func initSQL(t *testing.T, name, authUser, authPass, chatUser, chatPass string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "mysql", "init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		lines = append(lines, line)
	}
	text := strings.Join(lines, "\n")
	subs := [][2]string{
		{"IF NOT EXISTS parley ", "IF NOT EXISTS `" + name + "` "},
		{" parley.", " `" + name + "`."},
		{"'auth'@'%'", "'" + authUser + "'@'%'"},
		{"'chat'@'%'", "'" + chatUser + "'@'%'"},
		{"'auth-dev-password'", "'" + authPass + "'"},
		{"'chat-dev-password'", "'" + chatPass + "'"},
	}
	for _, s := range subs {
		if !strings.Contains(text, s[0]) {
			t.Fatalf("deploy/mysql/init.sql no longer contains %q: update initSQL", s[0])
		}
		text = strings.ReplaceAll(text, s[0], s[1])
	}
	if strings.Contains(text, "parley") {
		t.Fatalf("deploy/mysql/init.sql names parley somewhere this adaptation does not replace:\n%s", text)
	}
	var stmts []string
	for s := range strings.SplitSeq(text, ";") {
		if s = strings.TrimSpace(s); s != "" {
			stmts = append(stmts, s)
		}
	}
	return stmts
}

// setupDBUsers makes a fresh database and the auth and chat users of init.sql on it,
// with random names (tests run in parallel packages on one server).
func setupDBUsers(t *testing.T) dbUsers {
	t.Helper()
	d := testdb.New(t)
	root := rootOnTestServer(t, d.DB)
	suffix := randomHex(4)
	authUser, chatUser := "auth_"+suffix, "chat_"+suffix
	authPass, chatPass := "dbpw-auth-"+randomHex(12), "dbpw-chat-"+randomHex(12)
	t.Cleanup(func() {
		for _, u := range []string{authUser, chatUser} {
			_, _ = root.Exec("DROP USER IF EXISTS '" + u + "'@'%'")
		}
	})
	for _, q := range initSQL(t, d.Name, authUser, authPass, chatUser, chatPass) {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("init.sql: %s: %v", q, err)
		}
	}
	base := db.Config{Host: d.Host, Port: d.Port, Name: d.Name, MaxOpen: 10}
	a, c := base, base
	a.Username, a.Password = authUser, authPass
	c.Username, c.Password = chatUser, chatPass
	return dbUsers{Auth: a, Chat: c, Admin: d.DB, Name: d.Name}
}

// stack is the running product (tests/internal/e2e's), every service with its own NATS
// and MySQL user.
type stack struct {
	*e2e.Stack
	t    *testing.T
	base string
	// limited is a second gateway replica with small rate limits and Secure cookies.
	limited string
	nats    *server.Server
	nu      natsUsers
	db      dbUsers
	hf      *e2e.Fake

	mu        sync.Mutex
	responses []recorded
	// violations are NATS permission errors any service saw.
	violations []string
}

// recorded is one HTTP exchange, kept for the secrets check.
type recorded struct {
	method, path string
	e2e.Response
}

type stackOptions struct {
	authCfg    func(*auth.Config)
	gatewayCfg func(*gateway.Config)
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	s := &stack{t: t}
	s.db = setupDBUsers(t)
	s.nats, s.nu = startSecureNATS(t, nil)

	webDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(webDir, "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(webDir, "index.html"), []byte(spaIndex), 0o644)
	_ = os.WriteFile(filepath.Join(webDir, "assets", "app.js"), []byte("console.log('parley')\n"), 0o644)

	warn := slog.LevelWarn
	s.Stack = e2e.New(t, e2e.Options{
		// Gateway 1 is a second replica as deployed behind a TLS proxy, with the
		// default-sized rate limits made small: per-user sends and per-IP logins, HTTPS
		// cookies, trusted proxy headers.
		Gateways:  2,
		NATSURL:   s.nats.ClientURL(),
		DB:        &s.db.Chat,
		HFOptions: fakehf.Options{Tokens: []string{"hf_secret_" + randomHex(12)}},
		// Every log line of every service (at debug level) is kept for the secrets
		// check; warnings and errors show in the test log.
		LogLevel: slog.LevelDebug, ShowLevel: &warn, KeepLogs: true,
		LogWatch: func(line string) {
			if strings.Contains(line, "Permissions Violation") || strings.Contains(line, "permissions violation") {
				s.mu.Lock()
				s.violations = append(s.violations, line)
				s.mu.Unlock()
			}
		},
		Auth: func(c *auth.Config) {
			c.NATSURL, c.DB = userURL(s.nats, "auth", s.nu["auth"]), s.db.Auth
			c.RefreshReuseGrace = 2 * time.Second
			if o.authCfg != nil {
				o.authCfg(c)
			}
		},
		Chat: func(c *chat.Config) { c.NATSURL = userURL(s.nats, "chat", s.nu["chat"]) },
		Inference: func(_ int, c *inference.Config) {
			c.NATSURL = userURL(s.nats, "inference", s.nu["inference"])
		},
		Gateway: func(i int, c *gateway.Config) {
			c.NATSURL, c.WebDir = userURL(s.nats, "gateway", s.nu["gateway"]), webDir
			c.TrustedProxies = []string{"127.0.0.1/32"}
			if o.gatewayCfg != nil {
				o.gatewayCfg(c)
			}
			if i == 1 {
				c.SendRate, c.AuthRate, c.CookieSecure = 3, 5, true
			}
		},
	})
	s.base, s.limited, s.hf = s.URLs[0], s.URLs[1], s.HF
	s.OnResponse = s.record
	return s
}

// expectedViolations are denied attempts the product makes on purpose: a gateway that
// starts before chat and auth tries to create the GENERATIONS stream and the revocation
// bucket (creation is the owners' job; it then waits for them to appear).
var expectedViolations = []string{
	`Permissions Violation for Publish to \"$JS.API.STREAM.CREATE.GENERATIONS\"`,
	`Permissions Violation for Publish to \"$JS.API.STREAM.UPDATE.GENERATIONS\"`,
	`Permissions Violation for Publish to \"$JS.API.STREAM.CREATE.KV_AUTH_REVOKED_SESSIONS\"`,
}

// permissionViolations returns the unexpected NATS permission errors services logged.
func (s *stack) permissionViolations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, v := range s.violations {
		expected := false
		for _, e := range expectedViolations {
			expected = expected || strings.Contains(v, "service=gateway") && strings.Contains(v, e)
		}
		if !expected {
			out = append(out, v)
		}
	}
	return out
}

// use makes t (a subtest) the test that s and its clients report to.
func (s *stack) use(t *testing.T) {
	s.t = t
	s.Use(t)
}

// client is one API client: a browser (cookie jar, CSRF header) or a bearer client.
type client = e2e.Client

// sseEvent is one server-sent event.
type sseEvent = e2e.Event

type loginReply = e2e.LoginReply

// response is one HTTP answer.
type response = e2e.Response

func (s *stack) record(method, path string, res e2e.Response) {
	s.mu.Lock()
	s.responses = append(s.responses, recorded{method: method, path: path, Response: res})
	s.mu.Unlock()
}

// user signs up and logs in a new user with a unique name.
func (s *stack) user(prefix string, browser bool) *client {
	s.t.Helper()
	name := prefix + "_" + randomHex(3)
	s.SignUp(name)
	return s.LogIn(name, browser)
}

// final returns the message of a finished stream's last event.
func final(t *testing.T, evs []sseEvent) events.Message {
	t.Helper()
	if len(evs) == 0 {
		t.Fatal("empty stream")
	}
	var d struct {
		Message events.Message `json:"message"`
	}
	if err := json.Unmarshal([]byte(evs[len(evs)-1].Data), &d); err != nil {
		t.Fatalf("decode %s: %v", evs[len(evs)-1].Data, err)
	}
	return d.Message
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

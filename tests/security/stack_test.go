// Package security_test proves the security properties of the whole product (see
// docs/security.md): it runs Parley the way docker compose does, with the NATS users and
// permissions of deploy/nats/nats.conf and the MySQL users and grants of
// deploy/mysql/init.sql, each service connecting as itself, and attacks it through the
// gateway's HTTP API and straight over NATS and MySQL.
package security_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
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

// password is the password of every test user (long enough, not a common one).
const password = "correct horse battery staple 42"

// model is the model every chat uses.
const model = "mistralai/Mistral-7B-Instruct-v0.3"

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
// users. The port, the store and monitoring are the test's.
func startSecureNATS(t *testing.T, tlsConf func(*server.Options)) (*server.Server, natsUsers) {
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
	if tlsConf != nil {
		tlsConf(opts)
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
	status       int
	header       http.Header
	body         []byte
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

// client is one API client: a browser (cookie jar, CSRF header) or a bearer client.
type client struct {
	s *stack
	// base, when set, is another gateway replica than the stack's first.
	base string
	// fwd, when set, is sent as X-Forwarded-For (the limited gateway trusts it).
	fwd     string
	http    *http.Client
	bearer  string
	browser bool
	user    events.User
	session loginReply
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) code() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &env)
	return env.Error.Code
}

func (s *stack) newClient(browser bool) *client {
	jar, _ := cookiejar.New(nil)
	return &client{s: s, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}, browser: browser}
}

func (c *client) baseURL() string {
	if c.base != "" {
		return c.base
	}
	return c.s.base
}

func (s *stack) record(r recorded) {
	s.mu.Lock()
	s.responses = append(s.responses, r)
	s.mu.Unlock()
}

// raw sends a request with a raw body and extra headers (a nil value deletes one).
func (c *client) raw(method, path string, body []byte, header http.Header) response {
	c.s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.baseURL()+path, rd)
	if err != nil {
		c.s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.browser && method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("X-Parley-CSRF", "1")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.fwd != "" {
		req.Header.Set("X-Forwarded-For", c.fwd)
	}
	for k, v := range header {
		if v == nil {
			req.Header.Del(k)
		} else {
			req.Header[k] = v
		}
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	c.s.record(recorded{method: method, path: path, status: res.StatusCode, header: res.Header, body: b})
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// call sends body as JSON, checks the status and decodes the answer into out.
func (c *client) call(method, path string, body any, want int, out any) response {
	c.s.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			c.s.t.Fatal(err)
		}
	}
	res := c.raw(method, path, b, nil)
	if res.status != want {
		c.s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.status, want, res.body)
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			c.s.t.Fatalf("%s %s: decode %s: %v", method, path, res.body, err)
		}
	}
	return res
}

type loginReply struct {
	User         events.User `json:"user"`
	AccessToken  string      `json:"access_token"`
	ExpiresAt    time.Time   `json:"expires_at"`
	RefreshToken string      `json:"refresh_token"`
}

// signup creates an account named name.
func (s *stack) signup(name string) events.User {
	s.t.Helper()
	var rep struct {
		User events.User `json:"user"`
	}
	s.newClient(true).call("POST", "/api/auth/signup", map[string]string{
		"username": name, "email": name + "@example.com", "password": password, "firstname": "First " + name, "lastname": "Last",
	}, http.StatusCreated, &rep)
	return rep.User
}

// login signs in as a browser (cookies) or an API client (bearer).
func (s *stack) login(name string, browser bool) *client {
	s.t.Helper()
	c := s.newClient(true)
	var rep loginReply
	c.call("POST", "/api/auth/login", map[string]string{"username": name, "password": password}, http.StatusOK, &rep)
	c.user, c.session = rep.User, rep
	if !browser {
		c.browser = false
		c.bearer = rep.AccessToken
		c.http.Jar, _ = cookiejar.New(nil)
	}
	return c
}

// user signs up and logs in a new user with a unique name.
func (s *stack) user(prefix string, browser bool) *client {
	s.t.Helper()
	name := prefix + "_" + randomHex(3)
	s.signup(name)
	return s.login(name, browser)
}

func (c *client) createChat(title string) events.Chat {
	c.s.t.Helper()
	var rep events.ChatReply
	c.call("POST", "/api/chats", map[string]string{"title": title}, http.StatusCreated, &rep)
	return rep.Chat
}

func (c *client) send(chatID, content string) events.SendMessageReply {
	c.s.t.Helper()
	var rep events.SendMessageReply
	c.call("POST", "/api/chats/"+chatID+"/messages", map[string]string{"content": content}, http.StatusAccepted, &rep)
	return rep
}

func (c *client) messages(chatID string) []events.Message {
	c.s.t.Helper()
	var rep events.ListMessagesReply
	c.call("GET", "/api/chats/"+chatID+"/messages?limit=200", nil, http.StatusOK, &rep)
	return rep.Messages
}

// sseEvent is one server-sent event.
type sseEvent struct {
	ID, Event, Data string
}

// stream reads an answer's stream until it ends (done or error) or 30 s pass.
func (c *client) stream(messageID string) (int, []sseEvent) {
	c.s.t.Helper()
	return c.sse("/api/messages/"+messageID+"/stream", func(e sseEvent) bool { return e.Event == "done" || e.Event == "error" }, 30*time.Second, nil)
}

// sse opens an event stream and reads it until stop says so or within passes; started,
// when set, is called once the stream is open.
func (c *client) sse(path string, stop func(sseEvent) bool, within time.Duration, started func()) (int, []sseEvent) {
	c.s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL()+path, nil)
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.s.t.Fatalf("open stream %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		c.s.record(recorded{method: "GET", path: path, status: res.StatusCode, header: res.Header, body: b})
		return res.StatusCode, nil
	}
	if started != nil {
		started()
	}
	var raw bytes.Buffer
	evs, err := readEvents(io.TeeReader(res.Body, &raw), stop)
	c.s.record(recorded{method: "GET", path: path, status: res.StatusCode, header: res.Header, body: raw.Bytes()})
	if err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil {
		c.s.t.Fatalf("read stream: %v (got %v)", err, evs)
	}
	return res.StatusCode, evs
}

// readEvents parses server-sent events until stop says so or the body ends.
func readEvents(r io.Reader, stop func(sseEvent) bool) ([]sseEvent, error) {
	var out []sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Event != "" || cur.Data != "" {
				out = append(out, cur)
				if stop(cur) {
					return out, nil
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.Data += strings.TrimPrefix(line, "data: ")
		default:
			return out, fmt.Errorf("unexpected line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	return out, io.EOF
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

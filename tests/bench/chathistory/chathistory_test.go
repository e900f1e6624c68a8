// Package chathistory_test measures chat history at scale: one user with 10,000 chats
// and 100,000 messages in a fresh database, listed (first page, a deep page through the
// cursor) and searched (a common word, a rare word, two words, a word prefix, a short
// word, one letter, no match) through the chat service over NATS and through the gateway's HTTP
// API. Each sub-benchmark reports the p50 and p99 latency of its requests; run it with
// a fixed request count:
//
//	TEST_MYSQL_DSN=... go test -run '^$' -bench ChatHistory -benchtime 200x -timeout 30m ./bench/chathistory
package chathistory_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/libs/devstack/testnats"
	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/auth"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/gateway"
	"github.com/parley-chat/parley/services/inference"
)

// Scale of the seeded history (PARLEY_BENCH_CHATS scales it down for a quick run).
const (
	defaultChats    = 10000
	messagesPerChat = 10
	password        = "correct horse battery staple 42"
)

// Probe words: common is in about a fifth of the messages, rare in five, none in none.
const (
	wordCommon = "example"
	wordRare   = "quetzalcoatl"
	wordNone   = "xylophonist"
)

// stack is auth, chat, an inference worker and the gateway on a fresh database.
type stack struct {
	sqlDB  *sql.DB
	nc     *nats.Conn
	base   string
	token  string
	userID string
}

func start(b *testing.B) *stack {
	b.Helper()
	d := testdb.New(b)
	ns := testnats.New(b)
	dbc := db.Config{Username: d.User, Password: d.Password, Host: d.Host, Port: d.Port, Name: d.Name, MaxOpen: 20}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 4)
	go func() {
		done <- auth.Run(ctx, auth.Config{
			NATSURL: ns.ClientURL(), DB: dbc, RequestTimeout: 5 * time.Second, AccessTokenTTL: time.Hour,
			SessionIdleTimeout: time.Hour, SessionAbsoluteTimeout: 12 * time.Hour, RefreshReuseGrace: 10 * time.Second,
			Argon2MemoryKiB: 1024, Argon2Time: 1, Argon2Threads: 1, HashConcurrency: 4, HashQueue: 64,
			LoginIPPerMinute: 100000, LoginIPBurst: 100000, KeyMaxAge: 720 * time.Hour,
		}, auth.Deps{Logger: log})
	}()
	go func() {
		done <- chat.Run(ctx, chat.Config{NATSURL: ns.ClientURL(), DB: dbc, DefaultModel: "bench/model"}, chat.Deps{Logger: log})
	}()
	go func() { // the demo model: the gateway is ready once every service answers
		done <- inference.Run(ctx, inference.Config{NATSURL: ns.ClientURL()}, inference.Deps{Logger: log})
	}()
	go func() {
		done <- gateway.Run(ctx, gateway.Config{NATSURL: ns.ClientURL(), WebDir: b.TempDir(), SendRate: 100000, AuthRate: 100000},
			gateway.Deps{Logger: log, Listener: ln})
	}()
	b.Cleanup(func() {
		cancel()
		for range 4 {
			if err := <-done; err != nil {
				b.Errorf("service stopped with %v", err)
			}
		}
	})
	s := &stack{sqlDB: d.DB, base: "http://" + ln.Addr().String()}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(s.base + "/readyz?deps=1")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s.nc, err = nats.Connect(ns.ClientURL()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.nc.Close)

	s.post(b, "/api/auth/signup", map[string]string{"username": "bench", "email": "bench@example.com", "password": password,
		"firstname": "Bench", "lastname": "Mark"}, nil)
	var login struct {
		User        events.User `json:"user"`
		AccessToken string      `json:"access_token"`
	}
	s.post(b, "/api/auth/login", map[string]string{"username": "bench", "password": password}, &login)
	s.token, s.userID = login.AccessToken, login.User.ID
	return s
}

func (s *stack) post(b *testing.B, path string, body, out any) {
	b.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", s.base+path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Parley-CSRF", "1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		b.Fatalf("POST %s: %d %s", path, res.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			b.Fatal(err)
		}
	}
}

// vocabulary is a deterministic list of made-up words; the first ones are drawn far
// more often (a Zipf law), as in real text.
func vocabulary(r *rand.Rand, n int) []string {
	syl := []string{"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "de", "ba", "po", "ri", "zu", "fe", "gan", "tor", "len", "mas", "pir", "dun"}
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		k := 2 + r.IntN(3)
		var sb strings.Builder
		for range k {
			sb.WriteString(syl[r.IntN(len(syl))])
		}
		w := sb.String()
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// seed writes chats and their messages for the user with multi-row INSERTs, the
// full-text index of messages being built once at the end.
func seed(b testing.TB, s *stack, chats int) {
	b.Helper()
	ctx := context.Background()
	began := time.Now()
	r := rand.New(rand.NewPCG(1, 2))
	words := vocabulary(r, 5000)
	zipf := rand.NewZipf(r, 1.1, 10, uint64(len(words)-1))
	text := func(n int) string {
		var sb strings.Builder
		for i := range n {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(words[zipf.Uint64()])
		}
		return sb.String()
	}
	exec := func(q string, args ...any) {
		if _, err := s.sqlDB.ExecContext(ctx, q, args...); err != nil {
			b.Fatalf("%.80s: %v", q, err)
		}
	}
	exec("ALTER TABLE messages DROP INDEX ft_messages_content")

	const batch = 500
	now := time.Now().UTC()
	var chatRows, msgRows []string
	var chatArgs, msgArgs []any
	flush := func(force bool) {
		if len(chatRows) > 0 && (force || len(chatRows) >= batch) {
			exec("INSERT INTO chats (id, user_id, title, title_provisional, model, created_at, updated_at) VALUES "+
				strings.Join(chatRows, ","), chatArgs...)
			chatRows, chatArgs = chatRows[:0], chatArgs[:0]
		}
		if len(msgRows) > 0 && (force || len(msgRows) >= batch) {
			exec("INSERT INTO messages (id, chat_id, user_id, role, content, status, model, created_at, finished_at) VALUES "+
				strings.Join(msgRows, ","), msgArgs...)
			msgRows, msgArgs = msgRows[:0], msgArgs[:0]
		}
	}
	rare := map[int]bool{}
	for len(rare) < 5 {
		rare[r.IntN(chats*messagesPerChat)] = true
	}
	n := 0
	for i := range chats {
		id := uuid.Must(uuid.NewV7()).String()
		// Chats spread over a year, the newest activity last.
		created := now.Add(-time.Duration(chats-i) * 53 * time.Minute)
		updated := created.Add(time.Duration(messagesPerChat) * time.Minute)
		chatRows = append(chatRows, "(?, ?, ?, 0, 'bench/model', ?, ?)")
		chatArgs = append(chatArgs, id, s.userID, text(2+r.IntN(5)), created, updated)
		for j := range messagesPerChat {
			role, status, body := events.RoleUser, events.StatusComplete, text(8+r.IntN(25))
			if j%2 == 1 {
				role, body = events.RoleAssistant, text(40+r.IntN(120))
			}
			if r.IntN(5) == 0 {
				body += " " + wordCommon
			}
			if rare[n] {
				body += " " + wordRare
			}
			n++
			at := created.Add(time.Duration(j) * time.Minute)
			msgRows = append(msgRows, "(?, ?, ?, ?, ?, ?, 'bench/model', ?, ?)")
			msgArgs = append(msgArgs, uuid.Must(uuid.NewV7()).String(), id, s.userID, role, body, status, at, at)
		}
		flush(false)
	}
	flush(true)
	seeded := time.Since(began)
	exec("ALTER TABLE messages ADD FULLTEXT KEY ft_messages_content (content)")
	exec("ANALYZE TABLE chats, messages")
	b.Logf("seeded %d chats and %d messages in %s, full-text index in %s", chats, n, seeded.Round(time.Millisecond),
		(time.Since(began) - seeded).Round(time.Millisecond))
}

// scenario is one kind of request.
type scenario struct {
	name string
	// q is the search; deep pages through the cursor to the 100th page first.
	q    string
	deep bool
}

var scenarios = []scenario{
	{name: "list first page"},
	{name: "list page 100 (cursor)", deep: true},
	{name: "search common word", q: wordCommon},
	{name: "search common word page 20 (cursor)", q: wordCommon, deep: true},
	{name: "search rare word", q: wordRare},
	{name: "search two words", q: wordCommon + " " + wordRare},
	{name: "search word prefix", q: wordCommon[:4]},
	{name: "search two-letter word", q: "ka"},
	{name: "search one letter (no index)", q: "z"},
	{name: "search no match", q: wordNone},
}

// BenchmarkChatHistory seeds once, then runs each scenario over NATS and through the
// gateway; every sub-benchmark reports p50 and p99 in milliseconds.
func BenchmarkChatHistory(b *testing.B) {
	chats := defaultChats
	if v := os.Getenv("PARLEY_BENCH_CHATS"); v != "" {
		fmt.Sscan(v, &chats)
	}
	s := start(b)
	seed(b, s, chats)
	summary := map[string]string{}
	var order []string
	for _, sc := range scenarios {
		for _, via := range []string{"nats", "gateway"} {
			b.Run(via+"/"+sc.name, func(b *testing.B) {
				list := s.natsList
				if via == "gateway" {
					list = s.httpList
				}
				cursor := ""
				if sc.deep {
					pages := 100
					if sc.q != "" {
						pages = 20
					}
					cursor = deepCursor(b, list, sc.q, pages)
				}
				// Warm up (connection pools, caches), as a running service would be.
				for range 5 {
					list(b, sc.q, cursor)
				}
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for range b.N {
					t0 := time.Now()
					list(b, sc.q, cursor)
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				p50, p99 := percentile(lat, 50), percentile(lat, 99)
				b.ReportMetric(ms(p50), "p50-ms")
				b.ReportMetric(ms(p99), "p99-ms")
				key := via + "/" + sc.name
				if _, ok := summary[key]; !ok {
					order = append(order, key)
				}
				summary[key] = fmt.Sprintf("| %s | %s | %.1f | %.1f | %d |", sc.name, via, ms(p50), ms(p99), len(lat))
			})
		}
	}
	var rows []string
	for _, k := range order {
		rows = append(rows, summary[k])
	}
	b.Logf("\n| request | via | p50 ms | p99 ms | requests |\n|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

// listFunc lists one page of 50 chats and returns the next cursor.
type listFunc func(b *testing.B, q, cursor string) string

func (s *stack) natsList(b *testing.B, q, cursor string) string {
	// As the gateway does: chat acts only as the user of the forwarded access token.
	ctx, cancel := context.WithTimeout(events.WithUserToken(context.Background(), s.token), 10*time.Second)
	defer cancel()
	rep, err := events.Request[events.ListChatsRequest, events.ListChatsReply](ctx, s.nc, events.SubjectChatList,
		events.ListChatsRequest{UserID: s.userID, Limit: events.DefaultPageSize, Cursor: cursor, Query: q})
	if err != nil {
		b.Fatalf("list q=%q: %v", q, err)
	}
	return rep.NextCursor
}

func (s *stack) httpList(b *testing.B, q, cursor string) string {
	v := url.Values{"limit": {fmt.Sprint(events.DefaultPageSize)}}
	if q != "" {
		v.Set("q", q)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	req, _ := http.NewRequest("GET", s.base+"/api/chats?"+v.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var rep events.ListChatsReply
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		b.Fatalf("GET /api/chats q=%q: %d %s", q, res.StatusCode, body)
	}
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil {
		b.Fatal(err)
	}
	return rep.NextCursor
}

func deepCursor(b *testing.B, list listFunc, q string, pages int) string {
	cursor := ""
	for range pages - 1 {
		next := list(b, q, cursor)
		if next == "" {
			break
		}
		cursor = next
	}
	return cursor
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

package db

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// testConfig is the server of TEST_MYSQL_DSN (see libs/devstack/cmd/devdb); the test
// is skipped without it.
func testConfig(t *testing.T) Config {
	t.Helper()
	dsn := os.Getenv("TEST_MYSQL_DSN")
	if dsn == "" {
		t.Skip("TEST_MYSQL_DSN not set")
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse TEST_MYSQL_DSN: %v", err)
	}
	host, port, _ := strings.Cut(mc.Addr, ":")
	p, _ := strconv.Atoi(port)
	return Config{Username: mc.User, Password: mc.Passwd, Host: host, Port: p, MaxOpen: 2}
}

func sessionStatus(t *testing.T, ctx context.Context, c *sql.Conn, name string) int {
	t.Helper()
	var n string
	var v int
	if err := c.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE '"+name+"'").Scan(&n, &v); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return v
}

// Statements with arguments are sent with their arguments escaped, not prepared on the
// server, and every kind of value survives the trip.
func TestStatementsAreNotPrepared(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sqlDB, err := Open(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	if err := Wait(ctx, sqlDB); err != nil {
		t.Fatal(err)
	}
	c, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := sessionStatus(t, ctx, c, "Com_stmt_prepare")
	tests := []struct {
		name string
		arg  any
	}{
		{"quotes and backslashes", `it's a \"test\" \\ ; DROP TABLE x; --`},
		{"multibyte", "héllo — 世界 🦜 \u00a0"},
		{"nul byte", "a\x00b"},
		{"bytes", []byte{0, 1, 2, '\'', '\\', 0xff}},
	}
	for _, tt := range tests {
		var got []byte
		if err := c.QueryRowContext(ctx, "SELECT ?", tt.arg).Scan(&got); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		want := tt.arg
		if s, ok := want.(string); ok {
			want = []byte(s)
		}
		if string(got) != string(want.([]byte)) {
			t.Errorf("%s: got %q, want %q", tt.name, got, want)
		}
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	var gotTime time.Time
	if err := c.QueryRowContext(ctx, "SELECT CAST(? AS DATETIME(6))", at).Scan(&gotTime); err != nil {
		t.Fatalf("time: %v", err)
	}
	if !gotTime.Equal(at) {
		t.Errorf("time: got %s, want %s", gotTime, at)
	}
	if after := sessionStatus(t, ctx, c, "Com_stmt_prepare"); after != before {
		t.Errorf("%d statements prepared on the server, want none", after-before)
	}
}

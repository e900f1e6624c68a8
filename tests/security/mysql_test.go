package security_test

import (
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/parley-chat/parley/db"
)

// testMySQLLeastPrivilege: auth and chat run as the users of deploy/mysql/init.sql
// (the stack uses them; the rest of TestSecurity shows the product works), and each
// user can touch only its own tables.
func testMySQLLeastPrivilege(t *testing.T, s *stack) {
	s.use(t)
	// Some data of both services exists by now.
	u := s.user("db_owner", false)
	u.CreateChat("db check")

	authDB := openAs(t, s.db.Auth)
	chatDB := openAs(t, s.db.Chat)

	// Each service reads its own tables...
	for _, q := range []string{"SELECT COUNT(*) FROM users", "SELECT COUNT(*) FROM sessions", "SELECT COUNT(*) FROM refresh_tokens",
		"SELECT COUNT(*) FROM signing_keys", "SELECT COUNT(*) FROM login_throttle"} {
		if err := authDB.QueryRow(q).Scan(new(int)); err != nil {
			t.Errorf("auth user: %s: %v", q, err)
		}
	}
	for _, q := range []string{"SELECT COUNT(*) FROM chats", "SELECT COUNT(*) FROM messages", "SELECT COUNT(*) FROM outbox"} {
		if err := chatDB.QueryRow(q).Scan(new(int)); err != nil {
			t.Errorf("chat user: %s: %v", q, err)
		}
	}
	// ...and nothing of the other's.
	denied := []struct {
		who string
		db  *sql.DB
		q   string
	}{
		{"chat", chatDB, "SELECT COUNT(*) FROM users"},
		{"chat", chatDB, "SELECT password_hash FROM users LIMIT 1"},
		{"chat", chatDB, "SELECT COUNT(*) FROM sessions"},
		{"chat", chatDB, "SELECT COUNT(*) FROM refresh_tokens"},
		{"chat", chatDB, "SELECT COUNT(*) FROM signing_keys"},
		{"chat", chatDB, "SELECT COUNT(*) FROM login_throttle"},
		{"chat", chatDB, "UPDATE users SET username = username"},
		{"chat", chatDB, "DROP TABLE signing_keys"},
		{"chat", chatDB, "CREATE TABLE stolen (id INT)"},
		{"chat", chatDB, "SELECT COUNT(*) FROM mysql.user"},
		{"auth", authDB, "SELECT COUNT(*) FROM messages"},
		{"auth", authDB, "SELECT COUNT(*) FROM chats"},
		{"auth", authDB, "SELECT COUNT(*) FROM outbox"},
		{"auth", authDB, "DELETE FROM messages"},
		{"auth", authDB, "CREATE TABLE stolen (id INT)"},
		{"auth", authDB, "SELECT COUNT(*) FROM mysql.user"},
	}
	for _, d := range denied {
		_, err := d.db.Exec(d.q)
		var me *mysql.MySQLError
		// 1142: command denied for table; 1044: access denied for database; 1143: column.
		if !errors.As(err, &me) || (me.Number != 1142 && me.Number != 1044 && me.Number != 1143) {
			t.Errorf("%s user: %s: %v, want access denied", d.who, d.q, err)
		}
	}
	// No other schema is visible to them.
	for who, h := range map[string]*sql.DB{"auth": authDB, "chat": chatDB} {
		rows, err := h.Query("SHOW DATABASES")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			if n != "information_schema" {
				names = append(names, n)
			}
		}
		rows.Close()
		if len(names) != 1 || names[0] != s.db.Name {
			t.Errorf("%s user sees databases %v", who, names)
		}
	}
	// The grants are table-level only, and never DROP or GRANT OPTION.
	for who, h := range map[string]*sql.DB{"auth": authDB, "chat": chatDB} {
		rows, err := h.Query("SHOW GRANTS")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var g string
			_ = rows.Scan(&g)
			n++
			if strings.HasPrefix(g, "GRANT USAGE ON *.*") {
				continue
			}
			if strings.Contains(g, "ALL PRIVILEGES") || strings.Contains(g, "DROP") || strings.Contains(g, "GRANT OPTION") ||
				strings.Contains(g, ".*") {
				t.Errorf("%s user has a broad grant: %s", who, g)
			}
		}
		rows.Close()
		if n < 4 {
			t.Errorf("%s user has %d grants", who, n)
		}
	}
}

func openAs(t *testing.T, cfg db.Config) *sql.DB {
	t.Helper()
	h, err := db.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if err := h.Ping(); err != nil {
		t.Fatalf("connect as %s: %v", cfg.Username, err)
	}
	return h
}

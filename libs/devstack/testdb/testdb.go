// Package testdb gives each test its own real MySQL/MariaDB database: created with a
// random name on the server named by TEST_MYSQL_DSN (which `make test` starts) and
// dropped in t.Cleanup. Without TEST_MYSQL_DSN the test is skipped, unless CI=true, where
// a missing database is a failure.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Database is a fresh, empty database for one test.
type Database struct {
	Name     string
	Host     string
	Port     int
	User     string
	Password string
	DB       *sql.DB
}

// New creates a database for t and drops it when t ends.
func New(t testing.TB) *Database {
	t.Helper()
	dsn := os.Getenv("TEST_MYSQL_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TEST_MYSQL_DSN is not set; run the tests with `make test`")
		}
		t.Skip("TEST_MYSQL_DSN is not set; run the tests with `make test` to use a real MariaDB")
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse TEST_MYSQL_DSN: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("open test server: %v", err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	cfg.DBName = name
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() {
		_ = db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
		_ = admin.Close()
	})
	host, port := splitAddr(cfg.Addr)
	return &Database{Name: name, Host: host, Port: port, User: cfg.User, Password: cfg.Passwd, DB: db}
}

func splitAddr(addr string) (string, int) {
	host, portStr := addr, "3306"
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			host, portStr = addr[:i], addr[i+1:]
			break
		}
	}
	port := 0
	for _, c := range portStr {
		port = port*10 + int(c-'0')
	}
	return host, port
}

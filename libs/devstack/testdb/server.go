package testdb

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/parley-chat/parley/libs/devstack/mariadb"
)

// Server is a MariaDB server of one test's own, for tests that stop, restart or
// configure the server (the shared one of TEST_MYSQL_DSN must not be touched), with a
// login User/Password on the database Name.
type Server struct {
	*mariadb.Server
	User, Password, Name string
}

// NewServer starts a private MariaDB server in a temporary directory, with extraArgs
// on mariadbd's command line, and stops it when t ends. Outside `make test` (no
// TEST_MYSQL_DSN, no CI=true) and where MariaDB is not installed the test is skipped.
func NewServer(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	if os.Getenv("TEST_MYSQL_DSN") == "" && os.Getenv("CI") != "true" {
		t.Skip("TEST_MYSQL_DSN is not set; run the tests with `make test` to use a real MariaDB")
	}
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		t.Skip("MariaDB is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := mariadb.Start(ctx, t.TempDir(), slog.New(slog.DiscardHandler), extraArgs...)
	if err != nil {
		t.Fatalf("start mariadb: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Stop(sctx)
	})
	s := &Server{Server: srv, User: "parley", Password: "test-password", Name: "parley"}
	if err := srv.EnsureUser(ctx, s.User, s.Password, s.Name); err != nil {
		t.Fatal(err)
	}
	return s
}

// Package mariadb runs a private MariaDB server for `make run` and the tests: its data
// lives in a directory of ours, it listens on loopback only, and it is installed from
// Debian's packages when missing and we run as root.
package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Server is a running private MariaDB server.
type Server struct {
	Dir  string
	Port int
	log  *slog.Logger
}

// Socket is the server's unix socket, on which root logs in without a password.
func (s *Server) Socket() string { return filepath.Join(s.Dir, "mysqld.sock") }

// Start starts the server whose data lives in dir, initialising dir first if needed.
// When a server is already running on dir it is reused. The port is kept in dir/port so
// the next start reuses it. The server runs in its own process group, so Ctrl-C in the
// terminal does not kill it before our services have shut down; call Stop. extraArgs
// are added to mariadbd's command line (tests: a server with other settings).
func Start(ctx context.Context, dir string, log *slog.Logger, extraArgs ...string) (*Server, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	s := &Server{Dir: dir, log: log}
	if err := ensureInstalled(ctx, log); err != nil {
		return nil, err
	}
	if s.ping(ctx) == nil {
		port, err := readPort(dir)
		if err == nil {
			s.Port = port
			log.Info("mariadb already running", "dir", dir, "port", port)
			return s, nil
		}
	}
	osUser, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	dataDir := filepath.Join(dir, "data")
	// A temporary directory of this server's own: servers started side by side (the
	// browser tests start two stacks at once) never share /tmp's temporary tables.
	tmpDir := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", tmpDir, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "mysql")); errors.Is(err, os.ErrNotExist) {
		log.Info("initialising mariadb data directory", "dir", dataDir)
		if err := installDB(ctx, osUser.Username, dataDir, tmpDir); err != nil {
			return nil, err
		}
	}
	port, err := readPort(dir)
	if err != nil || !portFree(port) {
		if port, err = freePort(); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "port"), []byte(strconv.Itoa(port)), 0o600); err != nil {
			return nil, fmt.Errorf("save mariadb port: %w", err)
		}
	}
	s.Port = port
	_ = os.Remove(s.Socket())
	// A 256 MiB redo log: with 16 MiB a busy server checkpoints every few seconds and
	// writes the same hot pages again and again (the benchmark measured ~1.3 page
	// flushes per chat turn at 16 MiB, none at 256 MiB; docs/bench-notes-inference-chat.md).
	// Durability settings stay at their defaults (innodb_flush_log_at_trx_commit=1,
	// doublewrite on).
	args := append([]string{"--no-defaults", "--user=" + osUser.Username, "--datadir=" + dataDir,
		"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(port), "--socket=" + s.Socket(),
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--log-error=" + filepath.Join(dir, "error.log"),
		"--skip-name-resolve", "--innodb-log-file-size=256M", "--innodb-buffer-pool-size=256M",
		"--max-connections=500", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
		"--innodb-ft-min-token-size=2", "--ft-min-word-len=2", "--tmpdir=" + tmpDir}, extraArgs...)
	cmd := exec.Command(mariadbd(), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mariadbd: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := s.ping(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mariadb did not start within 30s; see %s", filepath.Join(dir, "error.log"))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	log.Info("mariadb started", "dir", dir, "port", port)
	return s, nil
}

// installDB initialises dataDir. A failed bootstrap is tried once more from an empty
// directory: it has been seen to fail once, with a temporary table gone missing, when
// two ran at the same time.
func installDB(ctx context.Context, osUser, dataDir, tmpDir string) error {
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		if err = os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("clear %s: %w", dataDir, err)
		}
		cmd := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--user="+osUser,
			"--datadir="+dataDir, "--tmpdir="+tmpDir, "--auth-root-authentication-method=normal", "--skip-test-db")
		out, cerr := cmd.CombinedOutput()
		if cerr == nil {
			return nil
		}
		err = fmt.Errorf("mariadb-install-db: %w: %s", cerr, tail(out))
	}
	return err
}

// EnsureUser creates (or updates) a TCP login with every privilege on the named
// database pattern, e.g. EnsureUser(ctx, "parley", "secret", "parley") or "%" patterns.
func (s *Server) EnsureUser(ctx context.Context, name, password, dbPattern string) error {
	db, err := s.Root()
	if err != nil {
		return err
	}
	defer db.Close()
	stmts := []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", name, password),
		fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY '%s'", name, password),
	}
	if dbPattern == "*" {
		stmts = append(stmts, fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%'", name))
	} else {
		stmts = append(stmts,
			fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci", dbPattern),
			fmt.Sprintf("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'", dbPattern, name))
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("set up mariadb user %s: %w", name, err)
		}
	}
	return nil
}

// Root opens a connection pool as root over the unix socket.
func (s *Server) Root() (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = s.Socket()
	cfg.MultiStatements = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("open mariadb root connection: %w", err)
	}
	return db, nil
}

// Stop shuts the server down and waits for it to finish.
func (s *Server) Stop(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "mariadb-admin", "--no-defaults", "--protocol=socket",
		"--socket="+s.Socket(), "-uroot", "shutdown").CombinedOutput()
	if err != nil {
		return fmt.Errorf("stop mariadb: %w: %s", err, tail(out))
	}
	return nil
}

func (s *Server) ping(ctx context.Context) error {
	if _, err := os.Stat(s.Socket()); err != nil {
		return err
	}
	return exec.CommandContext(ctx, "mariadb-admin", "--no-defaults", "--protocol=socket",
		"--socket="+s.Socket(), "-uroot", "--connect-timeout=1", "ping").Run()
}

func mariadbd() string {
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p
	}
	return "/usr/sbin/mariadbd"
}

// ensureInstalled installs mariadb-server with apt-get when it is missing and we are
// root; otherwise it says exactly what to install.
func ensureInstalled(ctx context.Context, log *slog.Logger) error {
	if _, err := os.Stat(mariadbd()); err == nil {
		if _, err := exec.LookPath("mariadb-install-db"); err == nil {
			return nil
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("MariaDB is not installed: install the Debian/Ubuntu package 'mariadb-server' " +
			"(sudo apt-get install mariadb-server), or point DB_HOST/DB_PORT at an existing MySQL/MariaDB server")
	}
	log.Info("installing mariadb-server with apt-get (first run only)")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "mariadb-server"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, tail(out))
		}
	}
	return nil
}

func readPort(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "port"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

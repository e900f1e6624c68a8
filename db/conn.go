package db

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Config is the database connection every service that owns tables reads from the
// environment. The names are the seed's (DB_USERNAME, DB_PASSWORD, DB_HOST, DB_PORT,
// DB_NAME), so an existing .env keeps working.
type Config struct {
	Username string `envconfig:"DB_USERNAME" default:"parley"`
	Password string `envconfig:"DB_PASSWORD" default:"parley"`
	Host     string `envconfig:"DB_HOST" default:"127.0.0.1"`
	Port     int    `envconfig:"DB_PORT" default:"3306"`
	Name     string `envconfig:"DB_NAME" default:"parley"`
	// TLS is "" (off), "true" (verify the server), "skip-verify" or "preferred".
	TLS string `envconfig:"DB_TLS" default:""`
	// TLSCA is a PEM file of the CA that signed the server's certificate (DB_TLS=true).
	TLSCA   string `envconfig:"DB_TLS_CA" default:""`
	MaxOpen int    `envconfig:"DB_MAX_OPEN_CONNS" default:"20"`
}

// String describes the connection without its password, for logs.
func (c Config) String() string {
	return fmt.Sprintf("%s@%s:%d/%s", c.Username, c.Host, c.Port, c.Name)
}

// Open opens a connection pool with bounded timeouts, so that a database outage makes
// requests fail fast instead of hanging, and the pool recovers by itself when the server
// is back. It does not wait for the server: use Wait.
func Open(cfg Config) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.User = cfg.Username
	mc.Passwd = cfg.Password
	mc.Net = "tcp"
	mc.Addr = cfg.Host + ":" + strconv.Itoa(cfg.Port)
	mc.DBName = cfg.Name
	mc.ParseTime = true
	mc.Loc = time.UTC
	mc.Timeout = 3 * time.Second
	mc.ReadTimeout = 30 * time.Second
	mc.WriteTimeout = 30 * time.Second
	mc.Params = map[string]string{"time_zone": "'+00:00'"}
	mc.Collation = "utf8mb4_unicode_ci"
	// Arguments are escaped by the driver and sent with the statement: one round trip
	// per statement instead of three (prepare, execute, close), and nothing for the
	// server to parse twice. Safe with utf8mb4 (the driver refuses multibyte
	// encodings where escaping is unsafe) and with NO_BACKSLASH_ESCAPES (it follows the
	// server's status flag).
	mc.InterpolateParams = true
	switch cfg.TLS {
	case "":
	case "true":
		tc := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
		if cfg.TLSCA != "" {
			pem, err := os.ReadFile(cfg.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("read DB_TLS_CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("DB_TLS_CA holds no PEM certificate")
			}
			tc.RootCAs = pool
		}
		mc.TLS = tc
	default:
		mc.TLSConfig = cfg.TLS
	}
	// A connector keeps mc.TLS; a DSN string would silently drop it.
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", cfg, err)
	}
	db := sql.OpenDB(conn)
	maxOpen := cfg.MaxOpen
	if maxOpen <= 0 {
		maxOpen = 20
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxLifetime(3 * time.Minute)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}

// Wait pings db until it answers or ctx ends, so a service can start before its
// database and keep retrying instead of exiting.
func Wait(ctx context.Context, db *sql.DB) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for database: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// mysqlServerShutdown is ER_SERVER_SHUTDOWN, sent by a server that is stopping.
const mysqlServerShutdown = 1053

// Unreachable reports whether err means the database could not be reached (refused,
// dropped or broken connection, network timeout, server shutting down), as opposed to
// an error in the statement itself. Services answer such errors with 503 unavailable.
func Unreachable(err error) bool {
	var me *mysql.MySQLError
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.As(err, &ne) || (errors.As(err, &me) && me.Number == mysqlServerShutdown)
}

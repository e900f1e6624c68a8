// Package db holds each service's schema migrations, one folder per owning service,
// and applies them safely when several replicas start at once.
package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed auth/*.sql chat/*.sql
var migrations embed.FS

// Migrate applies the migrations of one service ("auth" or "chat") to db. Each service
// keeps its own version and lock tables, so services sharing a database (make run) do
// not interfere, and a table lock serialises replicas starting together.
func Migrate(ctx context.Context, db *sql.DB, service string) error {
	fsys, err := fs.Sub(migrations, service)
	if err != nil {
		return fmt.Errorf("migrations for %s: %w", service, err)
	}
	locker, err := lock.NewMySQLTableLocker(lock.WithTableName("goose_lock_" + service))
	if err != nil {
		return fmt.Errorf("migration lock for %s: %w", service, err)
	}
	p, err := goose.NewProvider(goose.DialectMySQL, db, fsys,
		goose.WithTableName("goose_version_"+service),
		goose.WithLocker(locker),
	)
	if err != nil {
		return fmt.Errorf("migration provider for %s: %w", service, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply %s migrations: %w", service, err)
	}
	return nil
}

package chat_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/parley-chat/parley/db"
	"github.com/parley-chat/parley/libs/devstack/testdb"
	"github.com/parley-chat/parley/services/chat"
	"github.com/parley-chat/parley/services/chat/internal/store"
)

// TestRefusesStatementBinlog: on a server writing a statement-based binary log, InnoDB
// refuses writes at READ COMMITTED (the outbox relay's isolation level), so chat would
// store messages whose answers never start. It refuses to start instead, saying which
// setting to change, before it touches the schema.
func TestRefusesStatementBinlog(t *testing.T) {
	s := testdb.NewServer(t, "--log-bin=binlog", "--server-id=1", "--binlog-format=STATEMENT")
	cfg := db.Config{Username: s.User, Password: s.Password, Host: "127.0.0.1", Port: s.Port, Name: s.Name}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// What the check guards against: such a server refuses a READ COMMITTED write.
	sqlDB, err := db.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	if _, err := sqlDB.ExecContext(ctx, "CREATE TABLE probe (id INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	err = inTx(ctx, sqlDB, sql.LevelReadCommitted, "INSERT INTO probe VALUES (1)")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1665 {
		t.Fatalf("READ COMMITTED insert with binlog_format=STATEMENT: %v, want error 1665", err)
	}

	// Chat says so at start (no NATS is needed to get that far), and creates nothing.
	err = chat.Run(ctx, chat.Config{NATSURL: "nats://127.0.0.1:1", DB: cfg}, chat.Deps{})
	if err == nil || !strings.Contains(err.Error(), "binlog_format=STATEMENT") || !strings.Contains(err.Error(), "ROW or MIXED") {
		t.Fatalf("chat.Run = %v, want a refusal naming binlog_format", err)
	}
	var tables int
	if err := sqlDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'parley' AND table_name <> 'probe'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("chat created %d tables before refusing", tables)
	}

	// With a row-based log (MIXED here, MariaDB's default) the check passes and the same
	// write works.
	root, err := s.Root()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.ExecContext(ctx, "SET GLOBAL binlog_format = 'MIXED'"); err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxIdleConns(0) // new sessions take the new global value
	if err := store.CheckBinlog(ctx, sqlDB); err != nil {
		t.Errorf("CheckBinlog with binlog_format=MIXED: %v", err)
	}
	if err := inTx(ctx, sqlDB, sql.LevelReadCommitted, "INSERT INTO probe VALUES (2)"); err != nil {
		t.Errorf("READ COMMITTED insert with binlog_format=MIXED: %v", err)
	}
}

func inTx(ctx context.Context, sqlDB *sql.DB, level sql.IsolationLevel, stmt string) error {
	tx, err := sqlDB.BeginTx(ctx, &sql.TxOptions{Isolation: level})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return err
	}
	return tx.Commit()
}

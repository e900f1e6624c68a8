// Command devdb starts or stops the private MariaDB server used by `make test`:
//
//	devdb start DIR   prints a DSN for a user allowed to create test databases
//	devdb stop DIR
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/parley-chat/parley/libs/devstack/mariadb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devdb:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 3 {
		return fmt.Errorf("usage: devdb start|stop DIR")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch os.Args[1] {
	case "start":
		srv, err := mariadb.Start(ctx, os.Args[2], log)
		if err != nil {
			return err
		}
		if err := srv.EnsureUser(ctx, "parley_test", "parley_test", "*"); err != nil {
			return err
		}
		fmt.Printf("parley_test:parley_test@tcp(127.0.0.1:%d)/\n", srv.Port)
		return nil
	case "stop":
		return (&mariadb.Server{Dir: os.Args[2]}).Stop(ctx)
	}
	return fmt.Errorf("unknown command %q", os.Args[1])
}

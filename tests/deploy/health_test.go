package deploy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/parley-chat/parley/libs/ops"
)

// composeFiles are the ways the compose files are meant to be used.
var composeFiles = [][]string{
	{"docker-compose.yml"},
	{"docker-compose.yml", "docker-compose.cluster.yml"},
}

// serviceAddrVar is the variable each Parley service serves /healthz on; its
// `-healthcheck` flag probes the same address.
var serviceAddrVar = map[string]string{
	"auth":      "OPS_ADDR",
	"chat":      "OPS_ADDR",
	"inference": "INFERENCE_METRICS_ADDR",
	"gateway":   "GATEWAY_ADDR",
}

func TestComposeEveryServiceHasAHealthcheck(t *testing.T) {
	for _, files := range composeFiles {
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			p := loadCompose(t, files...)
			for name, s := range p.Services {
				if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
					t.Errorf("%s has no healthcheck", name)
					continue
				}
				v, ok := serviceAddrVar[name]
				if !ok {
					continue
				}
				// Distroless images: no shell, no wget; the binary probes itself.
				if want := []string{"CMD", "/service", "-healthcheck"}; !slices.Equal(s.HealthCheck.Test, want) {
					t.Errorf("%s healthcheck is %q, want %q", name, s.HealthCheck.Test, want)
				}
				if a := s.Environment[v]; a == nil || *a == "" {
					t.Errorf("%s does not set %s, so it serves no /healthz to probe", name, v)
				}
			}
			// Nothing that needs auth and chat starts before they are healthy.
			gw, err := p.GetService("gateway")
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"nats", "auth", "chat"} {
				if dep, ok := gw.DependsOn[d]; !ok || dep.Condition != types.ServiceConditionHealthy {
					t.Errorf("gateway should wait for %s to be healthy, got %+v", d, gw.DependsOn[d])
				}
			}
			if lb, err := p.GetService("lb"); err == nil {
				if dep, ok := lb.DependsOn["gateway"]; !ok || dep.Condition != types.ServiceConditionHealthy {
					t.Errorf("lb should wait for healthy gateways, got %+v", lb.DependsOn)
				}
			}
		})
	}
}

func TestComposeStreamReplicas(t *testing.T) {
	tests := []struct {
		files []string
		want  string // "" means unset (the default, 1)
	}{
		{[]string{"docker-compose.yml"}, ""},
		{[]string{"docker-compose.yml", "docker-compose.cluster.yml"}, "3"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.files, "+"), func(t *testing.T) {
			p := loadCompose(t, tt.files...)
			nats := 0
			for name := range p.Services {
				if strings.HasPrefix(name, "nats") {
					nats++
				}
			}
			for svc := range serviceAddrVar {
				s, err := p.GetService(svc)
				if err != nil {
					t.Fatal(err)
				}
				got := ""
				if v := s.Environment["NATS_STREAM_REPLICAS"]; v != nil {
					got = *v
				}
				if got != tt.want {
					t.Errorf("%s: NATS_STREAM_REPLICAS=%q, want %q", svc, got, tt.want)
				}
				// Replicas above the number of NATS servers cannot be placed.
				if got == "3" && nats < 3 {
					t.Errorf("%s asks for 3 stream replicas but there are %d NATS servers", svc, nats)
				}
				// In the cluster every service can reach every server.
				if got == "3" {
					url := *s.Environment["NATS_URL"]
					for _, n := range []string{"@nats:", "@nats-2:", "@nats-3:"} {
						if !strings.Contains(url, n) {
							t.Errorf("%s NATS_URL does not list %s", svc, strings.Trim(n, "@:"))
						}
					}
				}
			}
		})
	}
}

// TestHealthcheckCommand builds each service binary and runs the compose healthcheck
// command (`/service -healthcheck`) with the address variable compose sets, once
// against a real operations server (exit 0) and once against a closed port (exit 1).
func TestHealthcheckCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the four service binaries")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool to build the services with")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	live := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ops.Serve(ctx, live, ops.Handler(ops.NewRegistry(), nil), slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", live)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("operations server did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, livePort, _ := net.SplitHostPort(live)

	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()

	bin := t.TempDir()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	for svc, v := range serviceAddrVar {
		t.Run(svc, func(t *testing.T) {
			exe := filepath.Join(bin, svc)
			build := exec.Command("go", "build", "-o", exe, "./services/"+svc+"/cmd/"+svc)
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("build %s: %v\n%s", svc, err, out)
			}
			run := func(port string) (int, string) {
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer ccancel()
				cmd := exec.CommandContext(cctx, exe, "-healthcheck")
				// As in compose: the address is a bare port, probed on loopback.
				cmd.Env = append(os.Environ(), v+"=:"+port)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				switch {
				case err == nil:
					return 0, string(out)
				case errors.As(err, &ee):
					return ee.ExitCode(), string(out)
				}
				t.Fatalf("run %s -healthcheck: %v", svc, err)
				return -1, ""
			}
			if code, out := run(livePort); code != 0 {
				t.Errorf("healthy server: exit %d, want 0 (%s)", code, out)
			}
			if code, out := run(closedPort); code != 1 {
				t.Errorf("closed port: exit %d, want 1 (%s)", code, out)
			}
		})
	}
}

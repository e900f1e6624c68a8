// Package deploy checks the deployment files without a Docker engine: the compose
// files are loaded with compose-go (the loader docker compose itself uses) and their
// shape is checked against what the product needs.
package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func loadCompose(t *testing.T, files ...string) *types.Project {
	t.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join("..", "..", "deploy", f))
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithOsEnv,
		cli.WithWorkingDirectory(filepath.Join("..", "..", "deploy")),
		cli.WithName("parley"),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load %v: %v", files, err)
	}
	return p
}

func TestComposeHasTheWholeProduct(t *testing.T) {
	p := loadCompose(t, "docker-compose.yml")
	for _, name := range []string{"nats", "mysql", "auth", "chat", "inference", "gateway"} {
		if _, err := p.GetService(name); err != nil {
			t.Errorf("service %s missing: %v", name, err)
		}
	}
	inf, _ := p.GetService("inference")
	if inf.Deploy == nil || inf.Deploy.Replicas == nil || *inf.Deploy.Replicas < 3 {
		t.Errorf("inference should run at least 3 replicas, got %+v", inf.Deploy)
	}
	for _, name := range []string{"nats", "mysql"} {
		s, _ := p.GetService(name)
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s has no healthcheck", name)
		}
		if len(s.Volumes) == 0 {
			t.Errorf("%s keeps no data volume", name)
		}
		var named bool
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume {
				named = true
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s uses undeclared volume %s", name, v.Source)
				}
			}
		}
		if !named {
			t.Errorf("%s has no named volume for its data", name)
		}
	}
	// Every service waits for healthy NATS; those owning tables wait for healthy MySQL.
	wantDeps := map[string][]string{
		"auth":      {"nats", "mysql"},
		"chat":      {"nats", "mysql"},
		"inference": {"nats"},
		"gateway":   {"nats"},
	}
	for svc, deps := range wantDeps {
		s, _ := p.GetService(svc)
		for _, d := range deps {
			dep, ok := s.DependsOn[d]
			if !ok {
				t.Errorf("%s does not depend on %s", svc, d)
				continue
			}
			if dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s depends on %s with condition %q, want service_healthy", svc, d, dep.Condition)
			}
		}
		if s.Build == nil || s.Build.Dockerfile == "" {
			t.Errorf("%s is not built from the repository", svc)
		}
		if s.Environment["NATS_URL"] == nil {
			t.Errorf("%s has no NATS_URL", svc)
		}
	}
	gw, _ := p.GetService("gateway")
	if !slices.ContainsFunc(gw.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == 8080 && pc.Published == "8080" }) {
		t.Errorf("gateway does not publish port 8080: %+v", gw.Ports)
	}
	// Each service logs in to NATS and MySQL as itself.
	for _, svc := range []string{"auth", "chat"} {
		s, _ := p.GetService(svc)
		if u := s.Environment["DB_USERNAME"]; u == nil || *u != svc {
			t.Errorf("%s should use its own MySQL user, got %v", svc, u)
		}
	}
}

func TestDockerfileRules(t *testing.T) {
	// hadolint is not packaged for Debian and its npm wrapper downloads a binary, so the
	// rules we care about are checked here (see docs/deploy.md).
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	lines := dockerfileLines(string(b))
	var from, user, health int
	for _, l := range lines {
		switch l.instr {
		case "HEALTHCHECK":
			health++
			// Distroless: no shell, no wget; the service binary probes itself.
			if !strings.Contains(l.args, `CMD ["/service", "-healthcheck"]`) {
				t.Errorf("line %d: HEALTHCHECK should run the binary's own probe, got %s", l.n, l.args)
			}
		case "FROM":
			from++
			if !hasTag(l.args) {
				t.Errorf("line %d: FROM %s has no tag (DL3006/DL3007)", l.n, l.args)
			}
		case "USER":
			user++
			if l.args == "root" || l.args == "0" {
				t.Errorf("line %d: final image must not run as root (DL3002)", l.n)
			}
		case "ADD":
			t.Errorf("line %d: use COPY, not ADD (DL3020)", l.n)
		case "RUN":
			if containsWord(l.args, "apt-get install") && !containsWord(l.args, "--no-install-recommends") {
				t.Errorf("line %d: apt-get install without --no-install-recommends (DL3015)", l.n)
			}
		}
	}
	if from < 2 {
		t.Errorf("want a multi-stage build, got %d FROM lines", from)
	}
	if user == 0 {
		t.Error("no USER instruction: the image would run as root")
	}
	if health != 1 {
		t.Errorf("want one HEALTHCHECK, got %d", health)
	}
}

func TestComposeClusterVariant(t *testing.T) {
	p := loadCompose(t, "docker-compose.yml", "docker-compose.cluster.yml")
	for _, name := range []string{"nats", "nats-2", "nats-3"} {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatalf("cluster variant lacks %s: %v", name, err)
		}
		if s.HealthCheck == nil {
			t.Errorf("%s has no healthcheck", name)
		}
	}
	gw, _ := p.GetService("gateway")
	if gw.Deploy == nil || gw.Deploy.Replicas == nil || *gw.Deploy.Replicas != 2 {
		t.Errorf("want 2 gateway replicas, got %+v", gw.Deploy)
	}
	if len(gw.Ports) != 0 {
		t.Errorf("gateways should be reached through the load balancer only, got ports %+v", gw.Ports)
	}
	lb, err := p.GetService("lb")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(lb.Ports, func(pc types.ServicePortConfig) bool { return pc.Published == "8080" }) {
		t.Errorf("load balancer does not publish 8080: %+v", lb.Ports)
	}
}

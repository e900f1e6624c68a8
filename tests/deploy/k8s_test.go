package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v4"
)

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas       int `yaml:"replicas"`
		ScaleTargetRef struct {
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		Template struct {
			Spec struct {
				Containers []struct {
					Name           string `yaml:"name"`
					ReadinessProbe *struct {
						HTTPGet struct {
							Path string `yaml:"path"`
						} `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
					LivenessProbe *struct {
						HTTPGet struct {
							Path string `yaml:"path"`
						} `yaml:"httpGet"`
					} `yaml:"livenessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// manifests decodes every object of every file in deploy/k8s as a T.
func manifests[T any](t *testing.T) []T {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var out []T
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o T
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, o)
		}
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	deployments := map[string]k8sObject{}
	var hpaTargets []string
	for _, o := range manifests[k8sObject](t) {
		switch o.Kind {
		case "Deployment":
			deployments[o.Metadata.Name] = o
		case "HorizontalPodAutoscaler":
			hpaTargets = append(hpaTargets, o.Spec.ScaleTargetRef.Name)
		}
	}
	for _, name := range []string{"gateway", "auth", "chat", "inference"} {
		d, ok := deployments[name]
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("%s/%s: readiness probe should GET /readyz", name, c.Name)
			}
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("%s/%s: liveness probe should GET /healthz", name, c.Name)
			}
		}
	}
	if len(hpaTargets) != 1 || hpaTargets[0] != "inference" {
		t.Errorf("want one HorizontalPodAutoscaler for inference, got %v", hpaTargets)
	}
}

// k8sEnv is the part of a manifest that decides a container's environment.
type k8sEnv struct {
	Kind     string            `yaml:"kind"`
	Data     map[string]string `yaml:"data"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Name string `yaml:"name"`
					Env  []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom *struct {
							ConfigMapKeyRef *struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"configMapKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					EnvFrom []struct {
						ConfigMapRef *struct {
							Name string `yaml:"name"`
						} `yaml:"configMapRef"`
					} `yaml:"envFrom"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestKubernetesStreamReplicas: the NATS cluster of the Helm chart has 3 nodes, so
// every service creates its streams and buckets with 3 replicas.
func TestKubernetesStreamReplicas(t *testing.T) {
	configMaps := map[string]map[string]string{}
	var deployments []k8sEnv
	for _, o := range manifests[k8sEnv](t) {
		switch o.Kind {
		case "ConfigMap":
			configMaps[o.Metadata.Name] = o.Data
		case "Deployment":
			deployments = append(deployments, o)
		}
	}
	seen := map[string]bool{}
	for _, d := range deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			// Later sources win, as in Kubernetes: envFrom first, then env.
			env := map[string]string{}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					cm, ok := configMaps[ef.ConfigMapRef.Name]
					if !ok {
						t.Errorf("%s: envFrom unknown ConfigMap %s", d.Metadata.Name, ef.ConfigMapRef.Name)
					}
					for k, v := range cm {
						env[k] = v
					}
				}
			}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				case e.ValueFrom.ConfigMapKeyRef != nil:
					v, ok := configMaps[e.ValueFrom.ConfigMapKeyRef.Name][e.ValueFrom.ConfigMapKeyRef.Key]
					if !ok {
						t.Errorf("%s: %s refers to a missing ConfigMap key", d.Metadata.Name, e.Name)
					}
					env[e.Name] = v
				default:
					env[e.Name] = "(secret)"
				}
			}
			if got := env["NATS_STREAM_REPLICAS"]; got != "3" {
				t.Errorf("%s/%s: NATS_STREAM_REPLICAS=%q, want \"3\"", d.Metadata.Name, c.Name, got)
			}
			seen[d.Metadata.Name] = true
		}
	}
	for _, name := range []string{"gateway", "auth", "chat", "inference"} {
		if !seen[name] {
			t.Errorf("no Deployment %s", name)
		}
	}
}

package inference

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kelseyhightower/envconfig"
)

func TestConfigFromEnvironment(t *testing.T) {
	type limits struct {
		MaxDeliver                    int
		AckWait, Heartbeat, ParkAfter time.Duration
		ModelBusyDelay                time.Duration
		Coalesce                      time.Duration
		ModelConcurrency, Metrics     string
		Strict                        []string
	}
	tests := []struct {
		name string
		env  map[string]string
		want limits
	}{
		{name: "defaults", want: limits{MaxDeliver: 5, AckWait: 30 * time.Second, Heartbeat: 10 * time.Second,
			ParkAfter: 3 * time.Second, ModelBusyDelay: time.Second, Coalesce: 100 * time.Millisecond}},
		{name: "set", env: map[string]string{
			"INFERENCE_MAX_DELIVER": "3", "INFERENCE_ACK_WAIT": "6s", "INFERENCE_PARK_AFTER": "500ms",
			"INFERENCE_MODEL_CONCURRENCY": "a/b=2,default=4", "INFERENCE_MODEL_BUSY_DELAY": "250ms",
			"INFERENCE_STRICT_ROLES_MODELS": "x/y,z/*", "INFERENCE_METRICS_ADDR": ":9102",
			"INFERENCE_DELTA_COALESCE": "40ms",
		}, want: limits{Coalesce: 40 * time.Millisecond, MaxDeliver: 3, AckWait: 6 * time.Second, Heartbeat: 2 * time.Second, ParkAfter: 500 * time.Millisecond,
			ModelBusyDelay: 250 * time.Millisecond, ModelConcurrency: "a/b=2,default=4", Metrics: ":9102", Strict: []string{"x/y", "z/*"}}},
		{name: "parking off", env: map[string]string{"INFERENCE_PARK_AFTER": "-1s"},
			want: limits{MaxDeliver: 5, AckWait: 30 * time.Second, Heartbeat: 10 * time.Second, ModelBusyDelay: time.Second,
				Coalesce: 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var cfg Config
			if err := envconfig.Process("", &cfg); err != nil {
				t.Fatal(err)
			}
			c := cfg.withDefaults()
			got := limits{MaxDeliver: c.MaxDeliver, AckWait: c.AckWait, Heartbeat: c.Heartbeat, ParkAfter: c.ParkAfter,
				ModelBusyDelay: c.ModelBusyDelay, Coalesce: c.Coalesce, ModelConcurrency: c.ModelConcurrency, Metrics: c.MetricsAddr, Strict: c.StrictRolesModels}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

package ops

import (
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
)

// RPCMetrics counts and times a service's NATS request-reply endpoints: request rate,
// errors by status code and a latency histogram per endpoint.
type RPCMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewRPCMetrics registers the endpoint metrics of one service on reg.
func NewRPCMetrics(reg prometheus.Registerer, service string) *RPCMetrics {
	m := &RPCMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "parley_rpc_requests_total",
			Help:        "NATS requests handled, by endpoint and status code (200 for success).",
			ConstLabels: prometheus.Labels{"service": service},
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "parley_rpc_duration_seconds",
			Help:        "Time to handle a NATS request, by endpoint.",
			ConstLabels: prometheus.Labels{"service": service},
			Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"endpoint"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// Wrap measures h as endpoint. A nil *RPCMetrics returns h unchanged.
func (m *RPCMetrics) Wrap(endpoint string, h micro.Handler) micro.Handler {
	if m == nil {
		return h
	}
	return micro.HandlerFunc(func(r micro.Request) {
		start := time.Now()
		sr := &statusRequest{Request: r, code: "200"}
		h.Handle(sr)
		m.latency.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(endpoint, sr.code).Inc()
	})
}

// statusRequest remembers the error code a handler answered with.
type statusRequest struct {
	micro.Request
	code string
}

func (r *statusRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	r.code = code
	return r.Request.Error(code, description, data, opts...)
}

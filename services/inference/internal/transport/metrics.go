package transport

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are one worker's Prometheus metrics. It implements app.Observer.
type Metrics struct {
	queueDepth     prometheus.Gauge
	ackPending     prometheus.Gauge
	inFlight       prometheus.Gauge
	inFlightMax    prometheus.GaugeFunc
	ttft           *prometheus.HistogramVec
	tokensPerSec   *prometheus.HistogramVec
	providerErrors *prometheus.CounterVec
	answers        *prometheus.CounterVec
	handBacks      *prometheus.CounterVec

	cur, peak atomic.Int64
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_inference_queue_depth",
			Help: "Events waiting in the inference consumer, not yet delivered (NumPending)."}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_inference_ack_pending",
			Help: "Events delivered to a worker and not yet acknowledged (NumAckPending), parked ones included."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_inference_generations_in_flight",
			Help: "Answers this worker is writing now."}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_inference_time_to_first_token_seconds",
			Help:    "Time from the start of a provider call to its first text.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 4, 8, 15, 30, 60}}, []string{"model"}),
		tokensPerSec: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_inference_tokens_per_second",
			Help:    "Generation speed of finished provider calls, after the first token.",
			Buckets: []float64{1, 2, 5, 10, 20, 40, 80, 160, 320}}, []string{"model"}),
		providerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_inference_provider_errors_total",
			Help: "Failed provider calls by error code."}, []string{"model", "code"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_inference_answers_total",
			Help: "Answers this worker finished, by stored status."}, []string{"status"}),
		handBacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_inference_hand_backs_total",
			Help: "Events handed back to JetStream to wait (rate limits, a model at its limit), by reason."}, []string{"reason"}),
	}
	m.inFlightMax = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_inference_generations_in_flight_max",
		Help: "The most answers this worker wrote at once since it started."}, func() float64 { return float64(m.peak.Load()) })
	reg.MustRegister(m.queueDepth, m.ackPending, m.inFlight, m.inFlightMax, m.ttft, m.tokensPerSec,
		m.providerErrors, m.answers, m.handBacks)
	return m
}

// FirstToken implements app.Observer.
func (m *Metrics) FirstToken(model string, d time.Duration) {
	m.ttft.WithLabelValues(model).Observe(d.Seconds())
}

// Generated implements app.Observer.
func (m *Metrics) Generated(model string, tokens int, d time.Duration) {
	if tokens <= 1 || d <= 0 {
		return
	}
	m.tokensPerSec.WithLabelValues(model).Observe(float64(tokens-1) / d.Seconds())
}

// ProviderError implements app.Observer.
func (m *Metrics) ProviderError(model, code string) {
	m.providerErrors.WithLabelValues(model, code).Inc()
}

func (m *Metrics) begin() {
	n := m.cur.Add(1)
	m.inFlight.Set(float64(n))
	for {
		p := m.peak.Load()
		if n <= p || m.peak.CompareAndSwap(p, n) {
			break
		}
	}
}

func (m *Metrics) end() {
	m.inFlight.Set(float64(m.cur.Add(-1)))
}

package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sinkworker/sinkworker/pool"
)

// metrics are the worker's Prometheus series; names are part of the
// contract (prefix sinkworker_).
type metrics struct {
	reg          *prometheus.Registry
	records      *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	assigned     prometheus.Gauge
	kafkaCommits prometheus.Counter
	batchRecords prometheus.Histogram
	txSeconds    prometheus.Histogram
	acquireWait  prometheus.Histogram
	lag          *prometheus.GaugeVec
	lastCommit   *prometheus.GaugeVec
	rebalances   *prometheus.CounterVec
	abandoned    prometheus.Counter
	outOfRange   *prometheus.CounterVec
}

// watchHealth exports /readyz's answer as sinkworker_ready (1 or 0) and
// the number of halted partitions as sinkworker_halted_partitions.
func (m *metrics) watchHealth(h *health) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sinkworker_ready",
		Help: "1 when /readyz answers ready, else 0.",
	}, func() float64 {
		if h.ready() != nil {
			return 0
		}
		return 1
	}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sinkworker_halted_partitions",
		Help: "Assigned partitions halted until revoked (bad record under ERROR_POLICY=stop, a systemic database rejection, an error no retry fixes, an offset out of range).",
	}, func() float64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		return float64(len(h.halted))
	}))
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_records_total",
			Help: "Records by topic and outcome (written, deleted, deduplicated, already_applied, tombstone_skipped, dead_lettered).",
		}, []string{"topic", "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_dead_letters_total",
			Help: "Records sent to the dead-letter topic, by source topic and error class.",
		}, []string{"topic", "class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_retries_total",
			Help: "Batch transactions retried, by cause (transient: an error; timeout: past SINK_TX_TIMEOUT).",
		}, []string{"class"}),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sinkworker_assigned_partitions",
			Help: "Partitions assigned to this worker with a running goroutine.",
		}),
		kafkaCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sinkworker_kafka_commits_total",
			Help: "Successful offset commits to Kafka (coalesced copies of the database's offsets).",
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sinkworker_batch_records",
			Help:    "Records per batch transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 .. 65536
		}),
		txSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sinkworker_transaction_seconds",
			Help:    "Duration of a batch transaction attempt, from acquiring the connection to the commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms .. 16s
		}),
		acquireWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sinkworker_pool_acquire_seconds",
			Help:    "Time spent waiting for a database connection.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 0.1ms .. 26s
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sinkworker_lag_records",
			Help: "Records behind the partition's end (the last stable offset under read_committed, else the high watermark), after the last database commit.",
		}, []string{"topic", "partition"}),
		lastCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sinkworker_last_commit_timestamp_seconds",
			Help: "Unix time of the partition's last database commit.",
		}, []string{"topic", "partition"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_rebalances_total",
			Help: "Partition assignment changes, by kind (assigned, revoked, lost).",
		}, []string{"kind"}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sinkworker_db_connections_abandoned_total",
			Help: "Database connections destroyed because a batch attempt on them outlived its deadline (SINK_TX_TIMEOUT) or was cancelled.",
		}),
		outOfRange: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_offset_out_of_range_total",
			Help: "Partitions halted because the log no longer has their offset (topic recreated, retention), by topic.",
		}, []string{"topic"}),
	}
	m.reg.MustRegister(m.records, m.retries, m.deadLetters, m.assigned, m.kafkaCommits, m.rebalances, m.abandoned, m.outOfRange,
		m.batchRecords, m.txSeconds, m.acquireWait, m.lag, m.lastCommit,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchPool exports the pool's connections by state: in_use, idle, and
// max_allowed (the sizing rule's current limit).
func (m *metrics) watchPool(p *pool.Pool) {
	for state, f := range map[string]func() float64{
		"in_use":      func() float64 { return float64(p.Stat().AcquiredConns()) },
		"idle":        func() float64 { return float64(p.Stat().IdleConns()) },
		"max_allowed": func() float64 { return float64(p.Limit()) },
	} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sinkworker_pool_connections",
			Help:        "Database connections by state (in_use, idle, max_allowed).",
			ConstLabels: prometheus.Labels{"state": state},
		}, f))
	}
}

func (m *metrics) observe(topic string, r Result) {
	for outcome, n := range map[string]int{
		"written":           r.Written,
		"deleted":           r.Deleted,
		"deduplicated":      r.Deduplicated,
		"already_applied":   r.AlreadyApplied,
		"tombstone_skipped": r.TombstonesSkipped,
		"dead_lettered":     r.DeadLettered,
		"unknown_fields":    r.UnknownFields, // fields, not records: SINK_MAPPING=columns
	} {
		if n > 0 {
			m.records.WithLabelValues(topic, outcome).Add(float64(n))
		}
	}
}

// health is what /readyz reports: not ready while any partition is halted
// or backing off from a transient error, before the first assignment, and
// while the start offsets of an assignment cannot be read.
type health struct {
	mu       sync.Mutex
	joined   bool
	starting bool // reading start offsets failed and is being retried
	halted   map[string]bool
	backoff  map[string]bool
}

func newHealth() *health {
	return &health{halted: map[string]bool{}, backoff: map[string]bool{}}
}

func (h *health) setJoined() { h.mu.Lock(); h.joined = true; h.mu.Unlock() }

func (h *health) setStarting(on bool) { h.mu.Lock(); h.starting = on; h.mu.Unlock() }

func (h *health) setHalted(key string, on bool) { h.set(h.halted, key, on) }

func (h *health) isHalted(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.halted[key]
}

func (h *health) setBackoff(key string, on bool) { h.set(h.backoff, key, on) }

func (h *health) set(m map[string]bool, key string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if on {
		m[key] = true
	} else {
		delete(m, key)
	}
}

// isBackingOff reports whether the partition at key is retrying.
func (h *health) isBackingOff(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.backoff[key]
}

// forget clears the state of a partition that is no longer assigned.
func (h *health) forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.halted, key)
	delete(h.backoff, key)
}

func (h *health) ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	if !h.joined {
		errs = append(errs, errors.New("not yet in the consumer group"))
	}
	if h.starting {
		errs = append(errs, errors.New("start offsets cannot be read from the database, retrying"))
	}
	for k := range h.halted {
		errs = append(errs, fmt.Errorf("partition %s halted", k))
	}
	for k := range h.backoff {
		errs = append(errs, fmt.Errorf("partition %s backing off after a transient error", k))
	}
	return errors.Join(errs...)
}

// serveHTTP serves /metrics, /healthz and /readyz on ln until ctx ends. All
// three are read-only.
func (w *Worker) serveHTTP(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.health.ready(); err != nil {
			rw.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(rw, err)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	if w.cfg.HTTPPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

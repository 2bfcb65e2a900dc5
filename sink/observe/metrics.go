// Package observe owns what an operator sees of a worker from outside: the
// sinkworker_* Prometheus series (Metrics; their names and labels are part
// of the contract and never change), the readiness that /readyz reports
// (Health), and the HTTP server for /metrics, /healthz, /readyz and, when
// asked, Go's pprof profiles (Server).
//
// Use: m := observe.NewMetrics(); h := observe.NewHealth(); m.WatchHealth(h);
// srv, err := observe.Serve(addr, m, h, pprof, log); defer srv.Close(). The
// parts of a worker update m and h as they go. It imports no other
// sinkworker package.
package observe

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are a worker's Prometheus series, in their own registry. The
// fields are safe for concurrent use, as Prometheus collectors are.
type Metrics struct {
	// Registry holds every series below, Go's runtime and process
	// collectors, and whatever else the worker registers (the Kafka
	// client's kprom series).
	Registry *prometheus.Registry

	// Records is sinkworker_records_total{topic, outcome}; see CountRecords.
	Records *prometheus.CounterVec
	// Retries is sinkworker_retries_total{class}: batch attempts retried,
	// class "transient" (an error) or "timeout" (past SINK_TX_TIMEOUT).
	Retries *prometheus.CounterVec
	// DeadLetters is sinkworker_dead_letters_total{topic, class}.
	DeadLetters *prometheus.CounterVec
	// Assigned is sinkworker_assigned_partitions.
	Assigned prometheus.Gauge
	// KafkaCommits is sinkworker_kafka_commits_total.
	KafkaCommits prometheus.Counter
	// BatchRecords is sinkworker_batch_records: records per batch.
	BatchRecords prometheus.Histogram
	// TxSeconds is sinkworker_transaction_seconds: one batch attempt, from
	// acquiring the connection to the commit.
	TxSeconds prometheus.Histogram
	// AcquireWait is sinkworker_pool_acquire_seconds.
	AcquireWait prometheus.Histogram
	// Lag is sinkworker_lag_records{topic, partition}.
	Lag *prometheus.GaugeVec
	// LastCommit is sinkworker_last_commit_timestamp_seconds{topic, partition}.
	LastCommit *prometheus.GaugeVec
	// Rebalances is sinkworker_rebalances_total{kind}: assigned, revoked, lost.
	Rebalances *prometheus.CounterVec
	// PoolLimitRounds is sinkworker_pool_limit_rounds_total{reason}: the
	// rounds of POOL_MAX_CONNS=auto's limit, by decision (pool.Reason*).
	PoolLimitRounds *prometheus.CounterVec
	// Abandoned is sinkworker_db_connections_abandoned_total.
	Abandoned prometheus.Counter
	// OutOfRange is sinkworker_offset_out_of_range_total{topic}.
	OutOfRange *prometheus.CounterVec
	// ColumnsAdded is sinkworker_schema_columns_added_total{topic}.
	ColumnsAdded *prometheus.CounterVec
}

// NewMetrics registers the series in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_records_total",
			Help: "Records by topic and outcome (written, deleted, deduplicated, already_applied, tombstone_skipped, not_a_change, truncated, truncate_skipped, dead_lettered).",
		}, []string{"topic", "outcome"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_dead_letters_total",
			Help: "Records sent to the dead-letter topic, by source topic and error class.",
		}, []string{"topic", "class"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_retries_total",
			Help: "Batch transactions retried, by cause (transient: an error; timeout: past SINK_TX_TIMEOUT; registry: the schema registry did not answer).",
		}, []string{"class"}),
		Assigned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sinkworker_assigned_partitions",
			Help: "Partitions assigned to this worker with a running goroutine.",
		}),
		KafkaCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sinkworker_kafka_commits_total",
			Help: "Successful offset commits to Kafka (coalesced copies of the database's offsets).",
		}),
		BatchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sinkworker_batch_records",
			Help:    "Records per batch transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 .. 65536
		}),
		TxSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sinkworker_transaction_seconds",
			Help:    "Duration of a batch transaction attempt, from acquiring the connection to the commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms .. 16s
		}),
		AcquireWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sinkworker_pool_acquire_seconds",
			Help:    "Time spent waiting for a database connection.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 0.1ms .. 26s
		}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sinkworker_lag_records",
			Help: "Records behind the partition's end (the last stable offset under read_committed, else the high watermark), after the last database commit.",
		}, []string{"topic", "partition"}),
		LastCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sinkworker_last_commit_timestamp_seconds",
			Help: "Unix time of the partition's last database commit.",
		}, []string{"topic", "partition"}),
		Rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_rebalances_total",
			Help: "Partition assignment changes, by kind (assigned, revoked, lost).",
		}, []string{"kind"}),
		PoolLimitRounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_pool_limit_rounds_total",
			Help: "Rounds of the adaptive connection limit (POOL_MAX_CONNS=auto), by decision: slow_start, increase, decrease, hold, idle, probe, cap.",
		}, []string{"reason"}),
		Abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sinkworker_db_connections_abandoned_total",
			Help: "Database connections destroyed because a batch attempt on them outlived its deadline (SINK_TX_TIMEOUT) or was cancelled.",
		}),
		OutOfRange: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_offset_out_of_range_total",
			Help: "Partitions halted because the log no longer has their offset (topic recreated, retention), by topic.",
		}, []string{"topic"}),
		ColumnsAdded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sinkworker_schema_columns_added_total",
			Help: "Columns added to a topic's table for fields new to its schema (SINK_SCHEMA_EVOLUTION=add-columns), by topic.",
		}, []string{"topic"}),
	}
	m.Registry.MustRegister(m.Records, m.Retries, m.DeadLetters, m.Assigned, m.KafkaCommits, m.Rebalances, m.PoolLimitRounds, m.Abandoned, m.OutOfRange, m.ColumnsAdded,
		m.BatchRecords, m.TxSeconds, m.AcquireWait, m.Lag, m.LastCommit,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Outcomes counts one batch's records by the outcome label of
// sinkworker_records_total.
type Outcomes struct {
	Written           int // outcome "written": rows inserted or upserted
	Deleted           int // "deleted": keys deleted by tombstones
	Deduplicated      int // "deduplicated": superseded by a later record of the same key
	AlreadyApplied    int // "already_applied": below the stored next_offset
	TombstonesSkipped int // "tombstone_skipped": SINK_DELETE_ON_TOMBSTONE=false, or Debezium's after a delete
	NotChanges        int // "not_a_change": Debezium heartbeats, schema changes, transaction boundaries, messages
	Truncated         int // "truncated": Debezium truncates applied (SINK_TRUNCATE=true)
	TruncatesSkipped  int // "truncate_skipped": Debezium truncates ignored (SINK_TRUNCATE=false)
	DeadLettered      int // "dead_lettered"
	UnknownFields     int // "unknown_fields": JSON fields, not records, no column takes (SINK_MAPPING=columns)
}

// CountRecords adds a batch's outcomes to sinkworker_records_total; a zero
// count creates no series.
func (m *Metrics) CountRecords(topic string, o Outcomes) {
	for outcome, n := range map[string]int{
		"written":           o.Written,
		"deleted":           o.Deleted,
		"deduplicated":      o.Deduplicated,
		"already_applied":   o.AlreadyApplied,
		"tombstone_skipped": o.TombstonesSkipped,
		"not_a_change":      o.NotChanges,
		"truncated":         o.Truncated,
		"truncate_skipped":  o.TruncatesSkipped,
		"dead_lettered":     o.DeadLettered,
		"unknown_fields":    o.UnknownFields,
	} {
		if n > 0 {
			m.Records.WithLabelValues(topic, outcome).Add(float64(n))
		}
	}
}

// PoolStats is what WatchPool reads of a connection pool (*pool.Pool has
// it).
type PoolStats interface {
	// Stat is the pgxpool's statistics.
	Stat() *pgxpool.Stat
	// Limit is the sizing rule's current cap on connections.
	Limit() int
	// Adaptive is POOL_MAX_CONNS=auto's state; ok is false with a fixed
	// cap.
	Adaptive() (limit int, ratio float64, waiting int, ok bool)
}

// WatchPool exports p's connections by state as
// sinkworker_pool_connections{state}: in_use, idle, and max_allowed (the
// sizing rule's current limit). Call it once per Metrics.
func (m *Metrics) WatchPool(p PoolStats) {
	for state, f := range map[string]func() float64{
		"in_use":      func() float64 { return float64(p.Stat().AcquiredConns()) },
		"idle":        func() float64 { return float64(p.Stat().IdleConns()) },
		"max_allowed": func() float64 { return float64(p.Limit()) },
	} {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sinkworker_pool_connections",
			Help:        "Database connections by state (in_use, idle, max_allowed).",
			ConstLabels: prometheus.Labels{"state": state},
		}, f))
	}
	if _, _, _, ok := p.Adaptive(); !ok {
		return
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sinkworker_pool_latency_ratio",
			Help: "POOL_MAX_CONNS=auto: the last round's batch transaction latency over the lowest seen lately; the limit climbs while throughput still grows with the concurrency (the worker's own alone in its group, its group's counted in pg_stat_activity when shared; without that count near 1.5), up to 3.",
		}, func() float64 { _, ratio, _, _ := p.Adaptive(); return ratio }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sinkworker_pool_waiting_partitions",
			Help: "POOL_MAX_CONNS=auto: partitions waiting for their turn to write.",
		}, func() float64 { _, _, waiting, _ := p.Adaptive(); return float64(waiting) }),
	)
}

// WatchHealth exports h's answer as sinkworker_ready (1 or 0) and the
// number of halted partitions as sinkworker_halted_partitions. Call it
// once per Metrics.
func (m *Metrics) WatchHealth(h *Health) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sinkworker_ready",
		Help: "1 when /readyz answers ready, else 0.",
	}, func() float64 {
		if h.Ready() != nil {
			return 0
		}
		return 1
	}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sinkworker_halted_partitions",
		Help: "Assigned partitions halted until revoked (bad record under ERROR_POLICY=stop, a systemic database rejection, an error no retry fixes, an offset out of range).",
	}, func() float64 { return float64(h.halted()) }))
}

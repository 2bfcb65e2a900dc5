// Package sink is sinkworker's consumer: one Kafka consumer-group member per
// process that sinks its assigned partitions into PostgreSQL. Each assigned
// partition gets a goroutine that batches its records (package batch) and
// writes each batch in ONE transaction that also moves the partition's row
// in the offsets table, over a pool sized to the assignment (package pool).
// Kafka offsets are committed after the database commit, coalesced, for lag
// tooling; the database's offsets are the ones the worker starts from.
//
// Use: cfg, err := LoadConfig(ctx, lookuper); w, err := New(ctx, cfg, log);
// err = w.Run(ctx). Run returns after ctx ends and the shutdown sequence
// (see Run) completes.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/sinkworker/sinkworker/pool"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/dlq"
	"github.com/sinkworker/sinkworker/sink/observe"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// revokeBudget caps how long a revocation may spend flushing, well inside
// franz-go's default 60 s rebalance timeout, after which the member would be
// kicked from the group.
const revokeBudget = 30 * time.Second

// retryBackoff is how long the Kafka client waits before its fails-th retry
// of a request: 100 ms doubling to 1 s, with ±20% jitter, as Java's
// clients (retry.backoff.ms, retry.backoff.max.ms; KIP-580), not franz-go's
// 250 ms to 5 s. After a broker outage the group coordinator restarts every
// member's session timeout when it loads the group: a heartbeat still
// backing off for seconds could miss it, and the member be expired while it
// keeps its partitions (see Worker.forgotten).
func retryBackoff(fails int) time.Duration {
	d := 100 * time.Millisecond << min(max(fails-1, 0), 4)
	d = min(d, time.Second)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// commitInterval is how often offsets are copied to Kafka.
const commitInterval = time.Second

// metadataMaxAge bounds how long a partition added to a consumed topic goes
// unnoticed: one small Metadata request per interval.
const metadataMaxAge = 10 * time.Second

// Worker is one consumer-group member. Build it with New and call Run once.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	cl      *kgo.Client
	pool    *pool.Pool
	dead    *dlq.Producer // dead letters, over cl
	metrics *observe.Metrics
	health  *observe.Health

	committer *committer
	columns   map[string]*postgres.Columns // by topic, SINK_MAPPING=columns only
	// countGroup is postgres.Config.CountGroup: the members' application
	// name prefix under POOL_MAX_CONNS=auto, where the database can count
	// their transactions (openDB); empty otherwise.
	countGroup string
	prepared   map[string]bool   // topics whose table and dead-letter topic are ready (prepareTopics)
	tables     map[string]string // the topic of each prepared table, by its quoted name
	registry   *decode.Registry  // nil unless a format reads schemas from a registry
	http       *observe.Server   // nil when HTTPAddr is empty

	mu    sync.Mutex // guards parts; callbacks and the poll loop never run at once, but be safe
	parts map[string]map[int32]*partition

	// rebalanceMu serialises the group callbacks with forgotten, which
	// abandons partitions from the commit loop.
	rebalanceMu sync.Mutex

	fatalOnce sync.Once
	fatalErr  chan error
	closeOnce sync.Once // Close, or the end of Run
}

// New connects the pool, creates missing tables, opens the HTTP listener
// and builds the Kafka client. Nothing is consumed until Run.
func New(ctx context.Context, cfg Config, log *slog.Logger) (w *Worker, err error) {
	w, err = newWorker(cfg, log)
	if err != nil {
		return nil, err
	}
	defer func(w *Worker) { // w itself: `return nil, err` sets the named result to nil first
		if err != nil {
			w.Close()
		}
	}(w)
	// Serve /healthz and /readyz (not ready) while start-up waits for the
	// database, so probes tell a slow start from a dead process.
	if cfg.HTTPAddr != "" {
		if w.http, err = observe.Serve(cfg.HTTPAddr, w.metrics, w.health, cfg.HTTPPprof, w.log); err != nil {
			return nil, fmt.Errorf("HTTP_ADDR: %w", err)
		}
	}
	if err := w.openDB(ctx); err != nil {
		return nil, err
	}
	if err := w.probeRegistry(ctx); err != nil {
		return nil, err
	}
	opts, err := w.kafkaOpts()
	if err == nil {
		w.cl, err = kgo.NewClient(opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	w.committer.cl = w.cl
	w.dead = dlq.NewProducer(w.cl, cfg.DLQTopic, w.log, func(topic, class string) {
		w.metrics.DeadLetters.WithLabelValues(topic, class).Inc()
	})
	if err := probeKafka(ctx, w.cl, cfg, w.log); err != nil {
		return nil, err
	}
	if err := w.ensureDLQTopics(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// newWorker validates cfg and builds the Worker's in-memory parts.
func newWorker(cfg Config, log *slog.Logger) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w:\n%w", ErrConfig, err)
	}
	w := &Worker{
		cfg:      cfg,
		log:      log,
		metrics:  observe.NewMetrics(),
		health:   observe.NewHealth(),
		parts:    map[string]map[int32]*partition{},
		fatalErr: make(chan error, 1),
	}
	w.committer = newCommitter(w)
	w.prepared, w.tables = map[string]bool{}, map[string]string{}
	for _, t := range cfg.Topics {
		w.prepared[t] = true
		w.tables[cfg.Table(t).Sanitize()] = t
	}
	reg, err := cfg.NewRegistry()
	if err != nil {
		return nil, fmt.Errorf("%w:\n%w", ErrConfig, err)
	}
	w.registry = reg
	w.metrics.WatchHealth(w.health)
	for _, t := range cfg.Topics {
		w.metrics.OutOfRange.WithLabelValues(t) // 0 from the start, so an alert on its increase sees the first
		w.metrics.ColumnsAdded.WithLabelValues(t)
	}
	return w, nil
}

// probeRegistry asks the schema registry, if one is set, for its
// subjects: refused credentials stop start-up as a bad setting; a registry
// that does not answer is logged, since schemas are fetched (and retried)
// only when records need them.
func (w *Worker) probeRegistry(ctx context.Context) error {
	if w.registry == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := w.registry.Probe(ctx)
	switch {
	case errors.Is(err, decode.ErrRegistryRefused):
		return fmt.Errorf("%w:\nSCHEMA_REGISTRY_USERNAME, SCHEMA_REGISTRY_PASSWORD: %w", ErrConfig, err)
	case err != nil:
		w.log.Warn("schema registry not reachable yet; records wait for their schemas", "err", err)
	}
	return nil
}

// stopHTTP stops the HTTP server and waits for it; a no-op without one.
func (w *Worker) stopHTTP() {
	if w.http != nil {
		w.http.Close()
	}
}

// Close releases what New opened: the Kafka client (leaving the group if
// it joined), the HTTP listener and the pool with its trimming goroutine.
// It is for a Worker whose Run is never called; after Run, which closes
// everything itself, it does nothing. It may be called more than once, but
// not concurrently with Run.
func (w *Worker) Close() {
	w.closeOnce.Do(func() {
		if w.cl != nil {
			w.cl.Close()
		}
		w.stopHTTP()
		if w.pool != nil {
			w.pool.Close()
		}
	})
}

// Addr is the HTTP listener's address (useful with HTTP_ADDR=127.0.0.1:0),
// or nil when HTTP is disabled.
func (w *Worker) Addr() net.Addr {
	if w.http == nil {
		return nil
	}
	return w.http.Addr()
}

func (w *Worker) kafkaOpts() ([]kgo.Opt, error) {
	c := w.cfg
	start := kgo.NewOffset().AtStart()
	if c.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	isolation := kgo.ReadCommitted()
	if c.IsolationLevel == IsolationReadUncommitted {
		isolation = kgo.ReadUncommitted()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID("sinkworker-" + c.Member),
		kgo.WithLogger(kslog.New(slog.New(atLeast{w.log.Handler(), kafkaLogLevel(c)}).With("component", "kafka"))),
		kgo.WithHooks(kprom.NewMetrics("sinkworker_kafka", kprom.Registry(w.metrics.Registry))),
		kgo.ConsumerGroup(c.Group),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.ConsumeTopics(c.Topics...),
		// KAFKA_START_OFFSET applies only where neither the database nor
		// Kafka has an offset (startOffsets). An offset the log no longer
		// has is never reset silently: it reaches the poll loop as
		// OFFSET_OUT_OF_RANGE, which halts the partition (I8).
		kgo.ConsumeStartOffset(start),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchIsolationLevel(isolation),
		// Transaction markers come to the poll loop so the stored offsets
		// can move past them (see position).
		kgo.KeepControlRecords(),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.OnPartitionsAssigned(w.serial(w.assigned)),
		kgo.OnPartitionsRevoked(w.serial(w.revoked)),
		kgo.OnPartitionsLost(w.serial(w.lost)),
		kgo.AdjustFetchOffsetsFn(w.startOffsets),
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.RetryBackoffFn(retryBackoff),
		// New partitions of a consumed topic are found on a metadata
		// refresh: within this age instead of franz-go's 5 minutes.
		kgo.MetadataMaxAge(metadataMaxAge),
		// A partition resumed after a full queue only joins the next fetch;
		// with the default 5 s wait, a fetch parked on caught-up partitions
		// stalled the drain for seconds (the bench drain scenario: 0.40 -> 0.82 of the
		// ceiling with 250 ms).
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.FetchMaxPartitionBytes(c.FetchMaxPartitionBytes),
		// Dead-letter produces: acks=all and idempotent (the defaults), and
		// bounded, so an unreachable DLQ surfaces as a transient error.
		kgo.RecordDeliveryTimeout(dlq.DeliveryTimeout),
		kgo.ProducerBatchMaxBytes(dlq.BatchMaxBytes), // a letter of any record the worker can fetch fits
	}
	if c.TopicsRegex != "" {
		// Whole names, as Kafka's pattern subscription; never a
		// dead-letter topic, which the pattern may match too.
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics(c.TopicsPattern()),
			kgo.ConsumeExcludeTopics(dlqPattern(c.DLQTopic)))
	}
	if c.GroupProtocol == GroupProtocolConsumer {
		// The broker's "uniform" assignor, sticky like the balancer above,
		// which franz-go keeps for a broker without KIP-848.
		opts = append(opts, kgo.ServerSideBalancer())
	}
	sec, err := securityOpts(c)
	if err != nil {
		return nil, err
	}
	return append(opts, sec...), nil
}

// Run consumes until ctx ends or a fatal error, then shuts down in this
// order: stop polling; flush and commit every partition's batch within
// ShutdownTimeout; commit offsets to Kafka; leave the group and close the
// client; close the pool. It returns nil after a clean shutdown.
func (w *Worker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(context.Background())
	wg.Go(func() { w.committer.loop(bg, commitInterval) })
	wg.Go(func() {
		select {
		case err := <-w.fatalErr:
			cancel(err)
		case <-bg.Done():
		}
	})

	w.log.Info("consuming", "topics", w.cfg.Topics, "topics_regex", w.cfg.TopicsRegex, "group", w.cfg.Group, "group_protocol", w.cfg.GroupProtocol,
		"application_name", ApplicationName(w.cfg.Group, w.cfg.Member))
	w.poll(ctx)

	// Shutdown, in the documented order.
	w.log.Info("shutting down", "budget", w.cfg.ShutdownTimeout)
	deadline := time.Now().Add(w.cfg.ShutdownTimeout)
	w.stopAll(time.Until(deadline))
	cctx, ccancel := context.WithDeadline(context.Background(), deadline.Add(5*time.Second))
	w.committer.commit(cctx, nil, false)
	ccancel()
	w.cl.CloseAllowingRebalance() // leaves the group; revoke finds nothing left to flush
	stopBG()
	wg.Wait()
	w.stopHTTP()
	w.pool.Close()
	w.closeOnce.Do(func() {}) // all closed: a later Close does nothing
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	w.log.Info("stopped")
	return nil
}

// fatal stops the worker with err (the first one wins).
func (w *Worker) fatal(err error) {
	w.fatalOnce.Do(func() { w.fatalErr <- err })
}

// poll is the poll loop: it hands each partition's records to that
// partition's goroutine without ever blocking, then allows rebalances.
func (w *Worker) poll(ctx context.Context) {
	for {
		fetches := w.cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			w.cl.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, kerr.OffsetOutOfRange) {
				w.outOfRange(ctx, topic, partition)
				return
			}
			w.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		w.mu.Lock()
		share := w.cfg.BufferMaxBytes / max(1, w.countLocked())
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			end := fp.HighWatermark
			if w.cfg.IsolationLevel == IsolationReadCommitted {
				end = fp.LastStableOffset // where committed records end: the end for lag
			}
			if p := w.parts[fp.Topic][fp.Partition]; p != nil {
				p.take(fp.Records, end, share)
			} // else: revoked since the fetch; its records are not ours to process
		})
		w.mu.Unlock()
		w.cl.AllowRebalance()
	}
}

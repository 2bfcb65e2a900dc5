package sink

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/batch"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// partition owns one assigned partition: the poll loop hands it records with
// offer (never blocking), and its goroutine batches them and writes each
// batch in one transaction. It is started on assignment and stopped on
// revocation (finish: flush what it holds) or loss (abandon).
type partition struct {
	topic string
	id    int32
	label string // id as a metric label
	w     *Worker
	dec   decode.Config // how the partition's records decode
	wr    *postgres.Writer
	offs  postgres.Offsets // the group's rows of the offsets table
	log   *slog.Logger

	mu     sync.Mutex
	queue  []*kgo.Record // handed over by the poll loop, not yet batched
	runs   []arrival     // when queue's records came, oldest first: BATCH_LINGER counts from there
	qbytes int           // batch.Size of the queue
	held   int           // heldSize of every record offered and not yet written (queue, batch, in flight)
	share  int           // this partition's part of SINK_BUFFER_MAX_BYTES
	paused bool          // fetching paused until the goroutine catches up
	hwm    int64         // the partition's high watermark at the last fetch
	pos    position      // how far the log was handed over, markers included (position.go)

	wake   chan struct{} // capacity 1: something was queued
	quit   chan struct{} // closed: flush everything held, then return
	ctx    context.Context
	cancel context.CancelFunc // abandon: stop at once, commit nothing more
	done   chan struct{}
}

func newPartition(w *Worker, topic string, id int32) *partition {
	ctx, cancel := context.WithCancel(context.Background())
	return &partition{
		topic:  topic,
		id:     id,
		label:  strconv.Itoa(int(id)),
		w:      w,
		dec:    w.cfg.Decode(w.registry, primaryKey(w.columns[topic])),
		wr:     postgres.NewWriter(w.writerConfig(topic), topic, id, w.columns[topic]),
		offs:   w.cfg.Postgres().Offsets(),
		log:    w.log.With("topic", topic, "partition", id),
		pos:    newPosition(),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// arrival is n consecutive records of the queue handed over at once.
type arrival struct {
	n  int
	at time.Time
}

// recordOverhead is what a fetched record costs in memory beyond its key
// and value: the kgo.Record (about 160 bytes), its framing in the
// decompressed batch and its share of the compressed fetch it came in.
const recordOverhead = 256

// heldSize is a record's estimated memory, counted against
// SINK_BUFFER_MAX_BYTES.
func heldSize(r *kgo.Record) int { return batch.Size(r) + recordOverhead }

// offer queues records for the partition's goroutine without blocking.
// Fetching of the partition is paused (franz-go issue 811: a blocking send
// here would stall rebalances) when the queue holds two batches' worth, or
// when the partition holds more than share, its part of the worker-wide
// SINK_BUFFER_MAX_BYTES; so memory stays bounded however many partitions
// are assigned.
func (p *partition) offer(records []*kgo.Record, highWatermark int64, share int) {
	p.mu.Lock()
	p.hwm = highWatermark
	p.share = share
	p.queue = append(p.queue, records...)
	if len(records) > 0 {
		p.runs = append(p.runs, arrival{len(records), time.Now()})
	}
	for _, r := range records {
		p.qbytes += batch.Size(r)
		p.held += heldSize(r)
	}
	pol := p.w.cfg.Batch
	if !p.paused && (len(p.queue) >= 2*pol.MaxRecords || p.qbytes >= 2*pol.MaxBytes || p.held >= p.share) {
		p.paused = true
		p.w.cl.PauseFetchPartitions(map[string][]int32{p.topic: {p.id}})
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// fill moves queued records into b until b is full or the queue is empty,
// and resumes fetching once the queue is down to one batch's worth and the
// partition holds at most half its share. BATCH_LINGER counts from when the
// batch's first record was handed over, not from when it left the queue:
// records that came while the previous batch was being written have waited
// already (counted from the fill, they waited a whole write longer: p99
// produce-to-visible 333-357 ms at 16 partitions, linger 100 ms). It
// reports whether b should be written now without waiting for
// BATCH_LINGER: fetching is paused and nothing is queued, so b cannot grow
// until it is written.
func (p *partition) fill(b *batch.Batch) (starved bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.queue) && !b.Full() && b.Fits(p.queue[n]) {
		b.Add(p.queue[n], p.runs[0].at)
		if p.runs[0].n--; p.runs[0].n == 0 {
			p.runs = p.runs[1:]
		}
		p.qbytes -= batch.Size(p.queue[n])
		n++
	}
	clear(p.queue[:n]) // let the records go as soon as they are written
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue, p.runs = nil, nil
	}
	p.maybeResumeLocked()
	return p.paused && len(p.queue) == 0 && b.Len() > 0
}

// release forgets records written (or given up on) from what the
// partition holds, and resumes fetching if that was what held it back.
func (p *partition) release(records []*kgo.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range records {
		p.held -= heldSize(r)
	}
	p.maybeResumeLocked()
}

func (p *partition) maybeResumeLocked() {
	pol := p.w.cfg.Batch
	if p.paused && len(p.queue) <= pol.MaxRecords && p.qbytes <= pol.MaxBytes && p.held <= p.share/2 {
		p.paused = false
		p.w.cl.ResumeFetchPartitions(map[string][]int32{p.topic: {p.id}})
	}
}

// run is the partition's goroutine.
func (p *partition) run() {
	defer close(p.done)
	b := batch.New(p.w.cfg.Batch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		starved := p.fill(b)
		if starved || b.Due(time.Now()) {
			if !p.flush(b) {
				return
			}
			continue
		}
		if b.Len() == 0 {
			p.skipMarkers()
		}
		var lingered <-chan time.Time
		if d, ok := b.Deadline(); ok {
			timer.Reset(time.Until(d))
			lingered = timer.C
		}
		select {
		case <-p.wake:
		case <-lingered:
		case <-p.quit:
			p.finish(b)
			return
		case <-p.ctx.Done():
			return
		}
		timer.Stop()
	}
}

// finish flushes everything the partition holds, for a revocation or a
// shutdown; its stopper cancels p.ctx if it takes too long.
func (p *partition) finish(b *batch.Batch) {
	for {
		p.fill(b)
		if b.Len() == 0 || !p.flush(b) {
			return
		}
	}
}

// flush writes the batch, retrying transient errors (the database, or the
// dead-letter topic, unreachable) with exponential backoff and jitter for as
// long as it takes, and reports whether the partition can go on. It returns
// false when abandoned, or when the partition halts: under ERROR_POLICY=stop
// at a bad record, or on an error no retry can fix. A halted partition
// writes and commits nothing more until it is revoked.
func (p *partition) flush(b *batch.Batch) bool {
	records := b.Take()
	defer p.release(records)
	first, last := records[0].Offset, records[len(records)-1].Offset
	op := func() (postgres.Result, error) {
		// Decoded before a connection is taken, so nothing of it holds the
		// offsets row lock; again on each attempt, as the columns mapping's
		// primary key may have been read again.
		// One deadline for the whole attempt, every round trip included: a
		// connection or a schema registry that stops answering must not
		// hold the partition.
		ctx, cancel := context.WithTimeout(p.ctx, p.w.cfg.TxTimeout)
		defer cancel()
		rows, rejected, err := p.dec.Decode(ctx, records)
		if err != nil { // the schema registry did not answer: nothing dead-lettered, retried
			p.w.metrics.Retries.WithLabelValues(retryRegistry).Inc()
			p.w.health.SetBackoff(p.key(), true)
			p.log.Warn("schema registry unavailable, retrying", "err", err, "first_offset", first, "last_offset", last)
			return postgres.Result{}, err
		}
		start := time.Now()
		slot, err := p.w.pool.Slot(ctx) // POOL_MAX_CONNS=auto: this partition's turn
		if err != nil {
			return postgres.Result{}, p.retry(ctx, err, first, last)
		}
		conn, err := p.w.pool.Acquire(ctx)
		if err != nil {
			slot.Release()
			return postgres.Result{}, p.retry(ctx, err, first, last)
		}
		held := time.Now()
		p.w.metrics.AcquireWait.Observe(held.Sub(start).Seconds())
		res, err := p.wr.Write(ctx, conn, rows, rejected, p.w.dead.Send)
		p.w.metrics.TxSeconds.Observe(time.Since(start).Seconds())
		p.putBack(ctx, conn, err)
		if err == nil && res.Applied > 0 && res.DeadLettered == 0 { // a clean batch: its time is the database's
			slot.Done(len(records), time.Since(held), res.GroupTransactions)
		} else {
			slot.Release()
		}
		var (
			halt     *postgres.HaltError
			systemic *postgres.SystemicError
		)
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, &halt), errors.As(err, &systemic):
			return res, backoff.Permanent(err)
		case ctx.Err() != nil: // past the deadline, whatever the error: retried, never a halt
			return res, p.retry(ctx, err, first, last)
		case postgres.Classify(err) != postgres.Transient:
			return res, backoff.Permanent(err)
		}
		return res, p.transient(err, first, last)
	}
	res, err := backoff.Retry(p.ctx, op,
		backoff.WithBackOff(newBackoff()),
		backoff.WithMaxElapsedTime(0)) // never give up on an outage
	p.w.health.SetBackoff(p.key(), false)
	var halt *postgres.HaltError
	committed := err == nil || errors.As(err, &halt)
	if len(res.ColumnsAdded) > 0 {
		p.log.Info("schema evolution: columns added", "table", p.w.cfg.Table(p.topic).Sanitize(), "columns", res.ColumnsAdded)
		p.w.metrics.ColumnsAdded.WithLabelValues(p.topic).Add(float64(len(res.ColumnsAdded)))
	}
	if committed {
		// Counted even when the partition was lost meanwhile: the
		// transaction committed all the same.
		p.w.metrics.CountRecords(p.topic, outcomes(res))
		p.w.metrics.BatchRecords.Observe(float64(len(records)))
	}
	if p.ctx.Err() != nil {
		return false // never mark a commit for a partition no longer ours
	}
	if committed {
		if res.NextOffset > 0 {
			p.w.committer.mark(p.topic, p.id, res.NextOffset, records[len(records)-1].LeaderEpoch)
			p.mu.Lock()
			lag := max(0, p.hwm-res.NextOffset)
			p.mu.Unlock()
			p.w.metrics.Lag.WithLabelValues(p.topic, p.label).Set(float64(lag))
			p.w.metrics.LastCommit.WithLabelValues(p.topic, p.label).SetToCurrentTime()
		}
		if err == nil {
			return true
		}
	}
	p.halt(err, first, last)
	return false
}

// putBack returns conn to the pool after an attempt, or destroys it
// (pool.Abandon) when the attempt failed with its context ended: the
// connection may then be in the middle of a round trip with a peer that
// no longer answers, and must not serve anyone again.
func (p *partition) putBack(ctx context.Context, conn *pgxpool.Conn, err error) {
	if err == nil || ctx.Err() == nil {
		conn.Release()
		return
	}
	p.w.pool.Abandon(conn)
	p.w.metrics.Abandoned.Inc()
}

// retryTimeout is the retries metric's class for an attempt that
// outlived SINK_TX_TIMEOUT; retryRegistry for a schema registry that did
// not answer.
const (
	retryTimeout  = "timeout"
	retryRegistry = "registry"
)

// retry records a retry of an attempt that failed with err and returns
// err: as a timeout when the attempt outlived SINK_TX_TIMEOUT (its ctx
// ended, the partition's did not), else as a transient error. Either way
// the partition reports not-ready until a batch succeeds.
func (p *partition) retry(ctx context.Context, err error, first, last int64) error {
	if ctx.Err() == nil || p.ctx.Err() != nil {
		return p.transient(err, first, last)
	}
	p.w.metrics.Retries.WithLabelValues(retryTimeout).Inc()
	p.w.health.SetBackoff(p.key(), true)
	p.log.Warn("batch attempt timed out (SINK_TX_TIMEOUT); retrying on a new connection", "timeout", p.w.cfg.TxTimeout.String(),
		"err", postgres.Loggable(err), "first_offset", first, "last_offset", last)
	return err
}

// transient records a retry of a transient error and returns it.
func (p *partition) transient(err error, first, last int64) error {
	p.w.metrics.Retries.WithLabelValues(postgres.Transient.String()).Inc()
	p.w.health.SetBackoff(p.key(), true)
	p.log.Warn("transient error, retrying", "err", postgres.Loggable(err), "first_offset", first, "last_offset", last)
	return err
}

// halt stops the partition where it is, says why, and holds it until it
// is revoked; a fatal (configuration) error stops the whole worker.
func (p *partition) halt(err error, first, last int64) {
	var (
		halt     *postgres.HaltError
		systemic *postgres.SystemicError
	)
	switch {
	case errors.As(err, &halt):
		p.log.Error("bad record; partition halted (ERROR_POLICY=stop)", "offset", halt.Record.Offset,
			"class", halt.Class, "reason", halt.LogReason())
	case errors.As(err, &systemic):
		p.log.Error("systemic database rejection; partition halted, nothing dead-lettered (fix the cause, then restart)",
			"err", postgres.Loggable(err), "sqlstate", systemic.Code, "offset", systemic.Offset, "rejected", systemic.Rejected,
			"first_offset", first, "last_offset", last)
	default:
		p.log.Error("batch failed; partition halted", "err", postgres.Loggable(err),
			"class", postgres.Classify(err).String(), "first_offset", first, "last_offset", last)
	}
	p.w.health.SetHalted(p.key(), true)
	p.w.cl.PauseFetchPartitions(map[string][]int32{p.topic: {p.id}})
	if postgres.Classify(err) == postgres.Fatal {
		p.w.fatal(err)
	}
	select {
	case <-p.quit:
	case <-p.ctx.Done():
	}
}

func (p *partition) key() string { return p.topic + "/" + p.label }

// primaryKey is the decode stage's view of a columns-mapped table's primary
// key; nil in jsonb mapping (cols nil).
func primaryKey(cols *postgres.Columns) func() []string {
	if cols == nil {
		return nil
	}
	return cols.PrimaryKey
}

func newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.RandomizationFactor = 0.5
	return b
}

// stop asks the goroutine to finish what it holds and waits up to budget;
// after that the partition is abandoned. abandon cancels at once.
func (p *partition) stop(budget time.Duration) {
	close(p.quit)
	t := time.NewTimer(budget)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.log.Warn("flush on revoke took too long; abandoning the batch (the database keeps the offset)", "budget", budget)
		p.cancel()
		<-p.done
	}
	p.cancel()
}

func (p *partition) abandon() {
	p.cancel()
	<-p.done
}

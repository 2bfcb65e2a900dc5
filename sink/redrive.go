package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/dlq"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// RedriveResult counts what Redrive did.
type RedriveResult struct {
	Read        int            // dead letters read (transaction markers aside)
	Landed      int            // written to their table, or their row deleted
	Skipped     int            // already there, or their row may be newer (see Redrive)
	OtherTopics int            // letters of a topic outside KAFKA_TOPICS (a shared DLQ_TOPIC), left alone
	Failed      map[string]int // failed again, by dead-letter class
}

// FailedTotal is the number of records that failed again.
func (r RedriveResult) FailedTotal() int {
	n := 0
	for _, c := range r.Failed {
		n += c
	}
	return n
}

// idlePoll bounds one poll of the dead-letter topics: after a poll that
// brought nothing for the partitions not yet read to their end, Redrive
// checks whether the letters it still waits for have been deleted.
const idlePoll = time.Second

// Redrive re-sinks the records in the dead-letter topics of cfg.Topics, once
// the cause has been fixed (a column added, a constraint relaxed, a bug
// released). It reads each dead-letter partition from its start to its last
// stable offset when Redrive begins, committed letters only, and ends when it
// has read that far or when retention or DeleteRecords has removed what was
// left. Each letter goes back to its source topic's table under its source
// coordinates and timestamp (the __connect.errors.* headers and
// HeaderTimestamp), one statement each. A letter of a topic outside
// cfg.Topics is counted in OtherTopics and left alone.
//
// Redrive never overwrites or deletes a row that may be newer than the
// letter. In upsert mode a letter replaces or deletes a key's row only when
// the row was written from an earlier offset of the same partition; a row
// from another partition (the key moved partitions, and records of two
// partitions cannot be ordered) or without coordinates is left alone, and
// an absent key is inserted. In SINK_MAPPING=columns a table without
// kafka_partition and kafka_offset columns cannot tell: letters only insert
// absent keys and never delete. In insert mode a row already present under
// the letter's coordinates is left alone. What is left alone is counted in
// Skipped. A key deleted by a later tombstone is not known to Redrive and
// comes back: redrive before deleting, or check such keys.
//
// Redrive keeps no state and can be run again: what landed is skipped the
// next time. Records that fail again stay in the dead-letter topic and are
// counted by class. Every blocking step is bounded by ctx.
func Redrive(ctx context.Context, cfg Config, log *slog.Logger) (RedriveResult, error) {
	res := RedriveResult{Failed: map[string]int{}}
	d, err := newRedriver(ctx, cfg, log)
	if err != nil {
		return res, err
	}
	defer d.close()
	left, err := d.ends(ctx)
	if err != nil {
		return res, err
	}
	for len(left) > 0 {
		progressed, err := d.poll(ctx, left, &res)
		if err != nil {
			return res, err
		}
		if !progressed {
			if err := d.dropTrimmed(ctx, left); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// partitionKey names a dead-letter partition.
type partitionKey struct {
	topic     string
	partition int32
}

type redriver struct {
	cfg    Config
	log    *slog.Logger
	cl     *kgo.Client
	adm    *kadm.Client
	w      *Worker // its database side only: pool, tables, columns
	dlqs   []string
	topics map[string]bool // cfg.Topics
	db     *postgres.Redriver
}

func newRedriver(ctx context.Context, cfg Config, log *slog.Logger) (*redriver, error) {
	w, err := newWorker(cfg, log) // the worker's own pool, tables and checks; no group, no HTTP
	if err != nil {
		return nil, err
	}
	if err := w.openDB(ctx); err != nil {
		w.closeBase()
		return nil, err
	}
	w.pool.SetAssigned(ctx, 1)
	topics, seen := map[string]bool{}, map[string]bool{}
	var dlqs []string
	for _, t := range cfg.Topics {
		topics[t] = true
		if d := cfg.DLQTopicFor(t); !seen[d] {
			seen[d] = true
			dlqs = append(dlqs, d)
		}
	}
	sec, err := securityOpts(cfg)
	if err != nil {
		w.closeBase()
		return nil, err
	}
	cl, err := kgo.NewClient(append(sec, kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(dlqs...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(250*time.Millisecond),
		// Letters of aborted transactions were never dead-lettered; the
		// markers are kept because they move a partition to its end.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		w.closeBase()
		return nil, err
	}
	return &redriver{cfg: cfg, log: log, cl: cl, adm: kadm.NewClient(cl), w: w, dlqs: dlqs,
		topics: topics, db: postgres.NewRedriver(cfg.Postgres(), log)}, nil
}

func (d *redriver) close() {
	d.cl.Close()
	d.w.closeBase()
}

// ends returns, for each dead-letter partition that has letters to read,
// the offset to read up to: its last stable offset now (letters of a
// transaction still open are not waited for).
func (d *redriver) ends(ctx context.Context) (map[partitionKey]int64, error) {
	ends, err := d.adm.ListCommittedOffsets(ctx, d.dlqs...)
	if err != nil {
		return nil, fmt.Errorf("list dead-letter end offsets: %w", err)
	}
	left := map[partitionKey]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition): // no dead-letter topic, no letters
		case o.Err != nil:
			err = fmt.Errorf("list end offset of %s[%d]: %w", o.Topic, o.Partition, o.Err)
		case o.Offset > 0:
			left[partitionKey{o.Topic, o.Partition}] = o.Offset
		}
	})
	if err != nil {
		return nil, err
	}
	return left, d.dropTrimmed(ctx, left)
}

// dropTrimmed forgets the partitions whose log start has reached their end:
// retention or DeleteRecords removed the letters left, which no fetch will
// return.
func (d *redriver) dropTrimmed(ctx context.Context, left map[partitionKey]int64) error {
	starts, err := d.adm.ListStartOffsets(ctx, d.dlqs...)
	if err != nil {
		return fmt.Errorf("list dead-letter start offsets: %w", err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		k := partitionKey{o.Topic, o.Partition}
		if end, ok := left[k]; ok && o.Err == nil && o.Offset >= end {
			delete(left, k)
		}
	})
	return nil
}

// poll redrives the letters one poll (at most idlePoll) brings below their
// partition's end, forgets the partitions it has read to their end, and
// reports whether it brought anything for the partitions left. A partition
// is at its end once a record, letter or transaction marker, at or past
// end-1 arrives.
func (d *redriver) poll(ctx context.Context, left map[partitionKey]int64, res *RedriveResult) (bool, error) {
	pctx, cancel := context.WithTimeout(ctx, idlePoll)
	defer cancel()
	fetches := d.cl.PollFetches(pctx)
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var ferr error
	fetches.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) { // pctx's: an idle poll
			ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
		}
	})
	if ferr != nil {
		return false, ferr
	}
	progressed := false
	for _, r := range fetches.Records() {
		k := partitionKey{r.Topic, r.Partition}
		end, ok := left[k]
		if !ok {
			continue
		}
		progressed = true
		if r.Offset >= end {
			delete(left, k)
			continue
		}
		if r.Offset == end-1 {
			delete(left, k)
		}
		if r.Attrs.IsControl() {
			continue
		}
		res.Read++
		if err := d.one(ctx, r, res); err != nil {
			return false, err
		}
	}
	return progressed, nil
}

// one re-sinks a dead-lettered record under its source coordinates.
func (d *redriver) one(ctx context.Context, dead *kgo.Record, res *RedriveResult) error {
	src, err := dlq.SourceOf(dead)
	if err != nil {
		res.Failed["headers"]++
		d.log.Warn("not a sinkworker dead letter", "topic", dead.Topic, "partition", dead.Partition, "offset", dead.Offset, "err", err)
		return nil
	}
	if !d.topics[src.Topic] {
		res.OtherTopics++
		return nil
	}
	cols := d.w.columns[src.Topic]
	rows, bad := d.cfg.Decode(primaryKey(cols)).Decode([]*kgo.Record{src})
	var landed bool
	if len(bad) == 0 {
		var b *decode.Rejection
		landed, b, err = d.write(ctx, cols, rows[0])
		if err != nil {
			return err
		}
		if b != nil {
			bad = append(bad, *b)
		}
	}
	switch {
	case len(bad) > 0:
		res.Failed[bad[0].Class]++
		d.log.Warn("failed again", "topic", src.Topic, "partition", src.Partition, "offset", src.Offset,
			"class", bad[0].Class, "reason", bad[0].LogReason())
	case landed:
		res.Landed++
	default:
		res.Skipped++
	}
	return nil
}

// write applies one redriven row over a connection of the pool, within
// TxTimeout: a database that stops answering fails the command, never
// hangs it.
func (d *redriver) write(ctx context.Context, cols *postgres.Columns, row decode.Row) (bool, *decode.Rejection, error) {
	if row.Op == decode.OpSkip {
		return false, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.TxTimeout)
	defer cancel()
	conn, err := d.w.pool.Acquire(ctx)
	if err != nil {
		return false, nil, err
	}
	defer conn.Release()
	return d.db.Apply(ctx, conn, cols, row)
}

// Package redrive is `sinkworker redrive`: it reads the dead-letter topics
// of the consumed topics back into the tables the worker writes, once the
// cause of the rejections is fixed, never over a newer row. It is built from
// the stages, with no Worker: dlq.SourceOf turns a letter back into its
// source record, decode checks it as the worker would, and
// postgres.Redriver writes it over a pool of its own (one connection).
//
// Use: res, err := redrive.Run(ctx, cfg, log), with cfg built from the
// worker's settings; Run may be run again (what landed is skipped).
package redrive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/pool"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/dlq"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// Config is what Run needs, built by the caller from the worker's
// settings.
type Config struct {
	// Kafka are the options of a plain client: seed brokers, SASL and TLS
	// (sink.Config.ClientOpts), no group.
	Kafka []kgo.Opt
	// DLQTopic is DLQ_TOPIC: the one dead-letter topic of every consumed
	// topic when set, else each topic's "<topic>.dlq" (dlq.TopicFor).
	DLQTopic string
	// DatabaseURL is the pgx connection string; never logged.
	DatabaseURL string
	// ApplicationName names the connection in pg_stat_activity.
	ApplicationName string
	// Pool configures the connection pool, which holds one connection.
	Pool pool.Config
	// Postgres is the database side, as the worker has it: the consumed
	// topics, their tables, SINK_MODE and SINK_MAPPING.
	Postgres postgres.Config
	// Decode is the decode stage's configuration of a topic whose table
	// has the primary key primaryKey returns (nil in jsonb mapping).
	Decode func(primaryKey func() []string) decode.Config
	// TxTimeout bounds each statement with its connection's acquisition
	// (SINK_TX_TIMEOUT; positive): a database that stops answering fails
	// the command, never hangs it.
	TxTimeout time.Duration
}

// Result counts what Run did.
type Result struct {
	Read        int            // dead letters read (transaction markers aside)
	Landed      int            // written to their table, or their row deleted
	Skipped     int            // already there, or their row may be newer (see Run)
	OtherTopics int            // letters of a topic outside the consumed ones (a shared DLQ_TOPIC), left alone
	Failed      map[string]int // failed again, by dead-letter class
}

// FailedTotal is the number of records that failed again.
func (r Result) FailedTotal() int {
	n := 0
	for _, c := range r.Failed {
		n += c
	}
	return n
}

// idlePoll bounds one poll of the dead-letter topics: after a poll that
// brought nothing for the partitions not yet read to their end, Run checks
// whether the letters it still waits for have been deleted.
const idlePoll = time.Second

// Run re-sinks the records in the dead-letter topics of cfg.Postgres.Topics,
// once the cause has been fixed (a column added, a constraint relaxed, a bug
// released). It reads each dead-letter partition from its start to its last
// stable offset when Run begins, committed letters only, and ends when it
// has read that far or when retention or DeleteRecords has removed what was
// left. Each letter goes back to its source topic's table under its source
// coordinates and timestamp (the __connect.errors.* headers and
// dlq.HeaderTimestamp), one statement each. A letter of another topic is
// counted in OtherTopics and left alone.
//
// Run never overwrites or deletes a row that may be newer than the letter.
// In upsert mode a letter replaces or deletes a key's row only when the row
// was written from an earlier offset of the same partition; a row from
// another partition (the key moved partitions, and records of two
// partitions cannot be ordered) or without coordinates is left alone, and
// an absent key is inserted. In SINK_MAPPING=columns a table without
// kafka_partition and kafka_offset columns cannot tell: letters only insert
// absent keys and never delete. In insert mode a row already present under
// the letter's coordinates is left alone. What is left alone is counted in
// Skipped. A key deleted by a later tombstone is not known to Run and comes
// back: redrive before deleting, or check such keys.
//
// Run keeps no state and can be run again: what landed is skipped the next
// time. Records that fail again stay in the dead-letter topic and are
// counted by class. Every blocking step is bounded by ctx. A table the
// configuration cannot use (columns mapping, upsert, no primary key) is an
// error wrapping postgres.ErrNoPrimaryKey.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (Result, error) {
	res := Result{Failed: map[string]int{}}
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

// redriver is one Run: a client on the dead-letter topics and the database
// side.
type redriver struct {
	cfg     Config
	log     *slog.Logger
	cl      *kgo.Client
	adm     *kadm.Client
	pool    *pool.Pool
	columns map[string]*postgres.Columns // by topic, SINK_MAPPING=columns only
	db      *postgres.Redriver
	dlqs    []string
	topics  map[string]bool // the consumed topics
}

func newRedriver(ctx context.Context, cfg Config, log *slog.Logger) (*redriver, error) {
	p, cols, err := openDB(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	topics, seen := map[string]bool{}, map[string]bool{}
	var dlqs []string
	for _, t := range cfg.Postgres.Topics {
		topics[t] = true
		if d := dlq.TopicFor(cfg.DLQTopic, t); !seen[d] {
			seen[d] = true
			dlqs = append(dlqs, d)
		}
	}
	cl, err := kgo.NewClient(append(cfg.Kafka[:len(cfg.Kafka):len(cfg.Kafka)], kgo.ConsumeTopics(dlqs...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(250*time.Millisecond),
		// Letters of aborted transactions were never dead-lettered; the
		// markers are kept because they move a partition to its end.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		p.Close()
		return nil, err
	}
	return &redriver{cfg: cfg, log: log, cl: cl, adm: kadm.NewClient(cl), pool: p, columns: cols,
		db: postgres.NewRedriver(cfg.Postgres, log), dlqs: dlqs, topics: topics}, nil
}

func (d *redriver) close() {
	d.cl.Close()
	d.pool.Close()
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
func (d *redriver) poll(ctx context.Context, left map[partitionKey]int64, res *Result) (bool, error) {
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
func (d *redriver) one(ctx context.Context, dead *kgo.Record, res *Result) error {
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
	cols := d.columns[src.Topic]
	var pk func() []string
	if cols != nil {
		pk = cols.PrimaryKey
	}
	rows, bad, err := d.cfg.Decode(pk).Decode(ctx, []*kgo.Record{src})
	if err != nil {
		return err // the schema registry did not answer: the run stops, the letter stays
	}
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
// TxTimeout.
func (d *redriver) write(ctx context.Context, cols *postgres.Columns, row decode.Row) (bool, *decode.Rejection, error) {
	if row.Op == decode.OpSkip {
		return false, nil, nil // the worker skips such tombstones too
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.TxTimeout)
	defer cancel()
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return false, nil, err
	}
	defer conn.Release()
	return d.db.Apply(ctx, conn, cols, row)
}

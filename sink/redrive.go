package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RedriveResult counts what Redrive did.
type RedriveResult struct {
	Read    int            // dead-lettered records read
	Landed  int            // written to their table
	Skipped int            // already there, or their key holds a newer record
	Failed  map[string]int // failed again, by error class
}

// FailedTotal is the number of records that failed again.
func (r RedriveResult) FailedTotal() int {
	n := 0
	for _, c := range r.Failed {
		n += c
	}
	return n
}

// Redrive re-sinks the records in the dead-letter topics of cfg.Topics,
// from their start to their end when it begins, once the cause has been
// fixed (a column added, a constraint relaxed, a bug released). Each record
// goes back to its source topic's table under its source coordinates (the
// __connect.errors.* headers), one transaction each, and never overwrites
// newer data: in upsert mode a key whose row comes from a later offset of
// the same partition is skipped, in insert mode a row already present is.
// A key deleted by a later tombstone is not known to Redrive and comes
// back; redrive before deleting, or check such keys.
//
// Redrive keeps no state and can be run again: what landed is skipped the
// next time. Records that fail again stay in the dead-letter topic and are
// counted by class and logged with their reason.
func Redrive(ctx context.Context, cfg Config, log *slog.Logger) (RedriveResult, error) {
	res := RedriveResult{Failed: map[string]int{}}
	w, err := newRedriver(ctx, cfg, log)
	if err != nil {
		return res, err
	}
	defer w.close()
	ends, err := kadm.NewClient(w.cl).ListEndOffsets(ctx, w.dlqs...)
	if err != nil {
		return res, fmt.Errorf("list dead-letter offsets: %w", err)
	}
	remaining := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			if remaining[o.Topic] == nil {
				remaining[o.Topic] = map[int32]int64{}
			}
			remaining[o.Topic][o.Partition] = o.Offset
		}
	})
	for len(remaining) > 0 {
		fetches := w.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err) })
		if ferr != nil {
			return res, ferr
		}
		for _, r := range fetches.Records() {
			end, ok := remaining[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				continue
			}
			if r.Offset == end-1 {
				delete(remaining[r.Topic], r.Partition)
				if len(remaining[r.Topic]) == 0 {
					delete(remaining, r.Topic)
				}
			}
			res.Read++
			if err := w.one(ctx, r, &res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

type redriver struct {
	cfg  Config
	log  *slog.Logger
	cl   *kgo.Client
	w    *Worker // its database side only: pool, tables, columns
	dlqs []string
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
	seen := map[string]bool{}
	var dlqs []string
	for _, t := range cfg.Topics {
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
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(250*time.Millisecond))...)
	if err != nil {
		w.closeBase()
		return nil, err
	}
	return &redriver{cfg: cfg, log: log, cl: cl, w: w, dlqs: dlqs}, nil
}

func (d *redriver) close() {
	d.cl.Close()
	d.w.closeBase()
}

// one re-sinks a dead-lettered record under its source coordinates.
func (d *redriver) one(ctx context.Context, dead *kgo.Record, res *RedriveResult) error {
	src, err := sourceOf(dead)
	if err != nil {
		res.Failed["headers"]++
		d.log.Warn("not a sinkworker dead letter", "topic", dead.Topic, "partition", dead.Partition, "offset", dead.Offset, "err", err)
		return nil
	}
	wr := newWriter(d.cfg, src.Topic, src.Partition, d.w.columns[src.Topic])
	wr.guardNewer()
	conn, err := d.w.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	var r Result
	good, bad := wr.validate([]*kgo.Record{src})
	if len(good) > 0 {
		rejected, err := wr.execIsolating(ctx, tx, good, &r)
		if err != nil {
			return err
		}
		bad = append(bad, rejected...)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	switch {
	case len(bad) > 0:
		res.Failed[bad[0].class]++
		d.log.Warn("failed again", "topic", src.Topic, "partition", src.Partition, "offset", src.Offset,
			"class", bad[0].class, "reason", bad[0].reason)
	case r.Written+r.Deleted > 0:
		res.Landed++
	default:
		res.Skipped++
	}
	return nil
}

// sourceOf rebuilds the original record from a dead letter's headers.
func sourceOf(dead *kgo.Record) (*kgo.Record, error) {
	src := &kgo.Record{Key: dead.Key, Value: dead.Value, Timestamp: dead.Timestamp}
	var have int
	for _, h := range dead.Headers {
		var err error
		switch h.Key {
		case HeaderTopic:
			src.Topic, have = string(h.Value), have+1
		case HeaderPartition:
			var p int64
			p, err = strconv.ParseInt(string(h.Value), 10, 32)
			src.Partition, have = int32(p), have+1
		case HeaderOffset:
			src.Offset, err = strconv.ParseInt(string(h.Value), 10, 64)
			have++
		default:
			src.Headers = append(src.Headers, h)
		}
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.Key, err)
		}
	}
	if have != 3 {
		return nil, errors.New("missing __connect.errors.topic, partition or offset header")
	}
	return src, nil
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// OffsetReset is one partition's line of a reset: where the database's
// next_offset is and where the reset puts it. Offsets are -1 where there is
// none.
type OffsetReset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current"`   // sink_offsets.next_offset; -1 without a row
	Target    int64  `json:"target"`    // the next_offset the reset writes
	LogStart  int64  `json:"log_start"` // first offset still in the log
	LogEnd    int64  `json:"log_end"`   // the end "latest" means (the last stable offset under read_committed)
}

// ResetRequest says which partitions a reset moves, and where.
type ResetRequest struct {
	Topic     string
	Partition int32  // -1: every partition of Topic
	To        string // "earliest", "latest" or an offset
	Execute   bool   // false: a dry run that changes nothing
}

// ErrResetRefused marks a reset request that cannot be carried out as asked
// (a target outside the log, a partition the topic does not have).
var ErrResetRefused = errors.New("offsets reset refused")

// ResetCommand is the command that moves a partition's stored offset to to,
// as the worker and the audit print it for an operator (a dry run; add
// --execute to write).
func ResetCommand(topic string, partition int32, to string) string {
	return fmt.Sprintf("sinkworker offsets reset --topic %s --partition %d --to %s", topic, partition, to)
}

// Reset is the operator's deliberate way past an offset the log no longer
// has (or any other chosen point): it plans, per partition of r.Topic, the
// database's next_offset for the group of cfg.Offsets and, with r.Execute,
// writes the plan in one transaction that takes the rows' locks (waiting at
// most 10 s for a batch in flight; postgres.Offsets.Reset), then copies it
// to the group's committed offsets in Kafka when the group allows it (a
// failure there is returned as kafkaErr, after the database is written:
// workers start from the database). A running worker reads the database's
// offsets only when a partition is assigned to it: stop the workers first,
// or restart them after.
func Reset(ctx context.Context, cfg Config, r ResetRequest) (plan []OffsetReset, kafkaErr, err error) {
	cl, err := kgo.NewClient(cfg.Kafka...)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	plan, err = planReset(ctx, adm, cfg.ReadCommitted, r)
	if err != nil {
		return nil, nil, err
	}
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(ctx)
	targets := make(map[int32]int64, len(plan))
	for _, p := range plan {
		targets[p.Partition] = p.Target
	}
	current, err := cfg.Offsets.Reset(ctx, conn, r.Topic, targets, r.Execute)
	if err != nil {
		return nil, nil, err
	}
	for i := range plan {
		if n, ok := current[plan[i].Partition]; ok {
			plan[i].Current = n
		}
	}
	if !r.Execute {
		return plan, nil, nil
	}
	offsets := kadm.Offsets{}
	for _, p := range plan {
		offsets.Add(kadm.Offset{Topic: p.Topic, Partition: p.Partition, At: p.Target, LeaderEpoch: -1})
	}
	resp, err := adm.CommitOffsets(ctx, cfg.Offsets.Group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		kafkaErr = fmt.Errorf("copy to the group's committed offsets in Kafka (workers running?): %w", err)
	}
	return plan, kafkaErr, nil
}

// planReset lists the topic's log bounds and turns r.To into each
// partition's target.
func planReset(ctx context.Context, adm *kadm.Client, readCommitted bool, r ResetRequest) ([]OffsetReset, error) {
	var exact int64 = -1
	if r.To != "earliest" && r.To != "latest" {
		n, err := strconv.ParseInt(r.To, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: --to must be earliest, latest or an offset, got %q", ErrResetRefused, r.To)
		}
		exact = n
	}
	starts, err := adm.ListStartOffsets(ctx, r.Topic)
	if err != nil {
		return nil, fmt.Errorf("list log start offsets: %w", err)
	}
	list := adm.ListEndOffsets
	if readCommitted {
		list = adm.ListCommittedOffsets // the last stable offset: records of open transactions still come
	}
	ends, err := list(ctx, r.Topic)
	if err != nil {
		return nil, fmt.Errorf("list log end offsets: %w", err)
	}
	var plan []OffsetReset
	var errs []error
	ends.Each(func(e kadm.ListedOffset) {
		if r.Partition >= 0 && e.Partition != r.Partition {
			return
		}
		s, ok := starts.Lookup(e.Topic, e.Partition)
		if e.Err != nil || !ok || s.Err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", e.Topic, e.Partition, errors.Join(e.Err, s.Err)))
			return
		}
		p := OffsetReset{Topic: e.Topic, Partition: e.Partition, Current: -1, LogStart: s.Offset, LogEnd: e.Offset}
		switch {
		case r.To == "earliest":
			p.Target = p.LogStart
		case r.To == "latest":
			p.Target = p.LogEnd
		case exact < p.LogStart || exact > p.LogEnd:
			errs = append(errs, fmt.Errorf("%w: offset %d is outside the log [%d, %d] of %s[%d]",
				ErrResetRefused, exact, p.LogStart, p.LogEnd, p.Topic, p.Partition))
			return
		default:
			p.Target = exact
		}
		plan = append(plan, p)
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("%w: topic %q has no partition %d (or does not exist)", ErrResetRefused, r.Topic, r.Partition)
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].Partition < plan[j].Partition })
	return plan, nil
}

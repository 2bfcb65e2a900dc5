// Package audit holds two operator commands on a consumer group's stored
// offsets, both O(partitions), never a scan of a table: Audit answers "do
// the database and Kafka agree?" per partition, and Reset is the
// deliberate way past an offset the log no longer has (sinkworker offsets
// reset). They live together because they read the same things (the log's
// bounds from Kafka, the group's rows of the offsets table) and because the
// audit's problems, like the worker's out-of-range halt, name the reset
// command that resolves them (ResetCommand).
//
// Use: rows, err := audit.Audit(ctx, cfg) or plan, kafkaErr, err :=
// audit.Reset(ctx, cfg, req), with cfg built from the worker's settings.
package audit

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/postgres"
)

// Config is what both commands need, built by the caller from the
// worker's settings.
type Config struct {
	// Kafka are the options of a plain client: seed brokers, SASL and TLS
	// (sink.Config.ClientOpts), no group.
	Kafka []kgo.Opt
	// DatabaseURL is the pgx connection string; never logged.
	DatabaseURL string
	// Offsets is the group's rows of the offsets table (KAFKA_GROUP,
	// SINK_OFFSETS_TABLE).
	Offsets postgres.Offsets
	// Topics are the topics Audit checks (KAFKA_TOPICS); Reset takes its
	// topic from its Request.
	Topics []string
	// ReadCommitted is KAFKA_ISOLATION_LEVEL=read_committed: lag runs to,
	// and "latest" means, the last stable offset instead of the log end.
	ReadCommitted bool
	// Timeout bounds Audit's database read (SINK_TX_TIMEOUT; positive): a
	// database that stops answering fails the audit, never hangs it.
	Timeout time.Duration
}

// Row is one partition's agreement between the database and Kafka.
// Offsets are -1 where there is none.
type Row struct {
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	DBNextOffset   int64  `json:"db_next_offset"`    // sink_offsets.next_offset
	KafkaCommitted int64  `json:"kafka_committed"`   // the group's committed offset (a copy)
	LogStart       int64  `json:"log_start"`         // first offset still in the log
	LogEnd         int64  `json:"log_end"`           // high watermark
	LastStable     int64  `json:"last_stable"`       // last stable offset: the end for lag under read_committed
	Lag            int64  `json:"lag"`               // the end for lag - database offset
	Problem        string `json:"problem,omitempty"` // empty when consistent
	Note           string `json:"note,omitempty"`    // worth knowing, not a problem
}

// Audit answers "are the database and Kafka in agreement?" in O(partitions):
// one offsets query and four Kafka requests, never a scan of the table.
// Problems: a database offset beyond the log end (the topic was recreated
// or truncated), below the log start (records deleted by retention before
// they were sunk: lost), both of which halt the partition and name the
// command that resolves them, and a partition holding records with no row.
// Lag is measured to the last stable offset under read_committed (records
// of open transactions are not yet due), else to the log end. Rows come
// sorted by topic and partition.
func Audit(ctx context.Context, cfg Config) ([]Row, error) {
	cl, err := kgo.NewClient(cfg.Kafka...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, cfg.Topics...)
	if err != nil {
		return nil, fmt.Errorf("list log start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, cfg.Topics...)
	if err != nil {
		return nil, fmt.Errorf("list log end offsets: %w", err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, cfg.Topics...)
	if err != nil {
		return nil, fmt.Errorf("list last stable offsets: %w", err)
	}
	committed, err := adm.FetchOffsets(ctx, cfg.Offsets.Group)
	if err != nil {
		return nil, fmt.Errorf("fetch the group's offsets: %w", err)
	}
	db, err := dbOffsets(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var rows []Row
	var listErr error
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			listErr = fmt.Errorf("%s[%d]: %w", e.Topic, e.Partition, e.Err)
			return
		}
		r := Row{Topic: e.Topic, Partition: e.Partition, LogEnd: e.Offset, LastStable: e.Offset,
			DBNextOffset: -1, KafkaCommitted: -1, LogStart: -1}
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok && s.Err == nil {
			r.LogStart = s.Offset
		}
		if s, ok := stable.Lookup(e.Topic, e.Partition); ok && s.Err == nil {
			r.LastStable = s.Offset
		}
		if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.Err == nil {
			r.KafkaCommitted = c.At
		}
		if n, ok := db[e.Topic][e.Partition]; ok {
			r.DBNextOffset = n
		}
		r.judge(cfg.ReadCommitted)
		rows = append(rows, r)
	})
	if listErr != nil {
		return nil, fmt.Errorf("list offsets: %w", listErr)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Topic != rows[j].Topic {
			return rows[i].Topic < rows[j].Topic
		}
		return rows[i].Partition < rows[j].Partition
	})
	return rows, nil
}

// judge fills Lag, Problem and Note.
func (r *Row) judge(readCommitted bool) {
	end := r.LogEnd
	if readCommitted {
		end = r.LastStable
	}
	resolve := func() string {
		return "; the partition is halted until resolved: " + ResetCommand(r.Topic, r.Partition, "earliest")
	}
	switch {
	case r.DBNextOffset < 0 && r.LogEnd > 0:
		r.Lag = end - max(r.LogStart, 0)
		r.Problem = "no row in the offsets table: nothing of this partition was sunk"
	case r.DBNextOffset < 0:
		r.Note = "empty partition, never sunk"
	case r.DBNextOffset > r.LogEnd:
		r.Problem = fmt.Sprintf("database offset %d is beyond the log end %d: topic recreated or truncated%s",
			r.DBNextOffset, r.LogEnd, resolve())
	case r.DBNextOffset < r.LogStart:
		r.Lag = end - r.DBNextOffset
		r.Problem = fmt.Sprintf("database offset %d is below the log start %d: %d records deleted before they were sunk%s",
			r.DBNextOffset, r.LogStart, r.LogStart-r.DBNextOffset, resolve())
	default:
		r.Lag = max(0, end-r.DBNextOffset)
	}
	if r.Problem == "" && r.KafkaCommitted > r.DBNextOffset && r.DBNextOffset >= 0 {
		r.Note = "Kafka's committed offset is ahead of the database's (reset by hand?): the worker starts from the database"
	}
}

// dbOffsets reads the group's rows of the offsets table for cfg.Topics
// over a connection of its own.
func dbOffsets(ctx context.Context, cfg Config) (map[string]map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(ctx)
	out, err := cfg.Offsets.Read(ctx, conn, cfg.Topics)
	if err != nil {
		return nil, fmt.Errorf("read the offsets table: %w", err)
	}
	return out, nil
}

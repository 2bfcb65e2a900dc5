// Command naive is the consumer most teams start from, for the bench suite
// (bench/suite): the Spring Kafka + HikariCP pattern in Go. One process runs
// one consumer (a group member) per thread, -consumers of them, which share
// one connection pool of -pool connections (Hikari's default: 10, opened
// eagerly: minimumIdle = maximumPoolSize). Every record is upserted in its
// own transaction (auto-commit), and Kafka offsets are committed after each
// poll's records are written (Spring's AckMode.BATCH).
//
// It runs until -records records are applied or for -duration, then prints
// one JSON line {"records":N,"seconds":S,"first_ms":F} on stdout: the records
// applied and the time from the first applied record to the end.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
)

const upsertSQL = `INSERT INTO %s AS t (key, value, kafka_partition, kafka_offset, kafka_timestamp, updated_at)
VALUES ($1, $2::jsonb, $3, $4, $5, now())
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kafka_partition = EXCLUDED.kafka_partition,
	kafka_offset = EXCLUDED.kafka_offset, kafka_timestamp = EXCLUDED.kafka_timestamp, updated_at = EXCLUDED.updated_at`

func main() {
	var (
		brokers   = flag.String("brokers", os.Getenv("KAFKA_BROKERS"), "Kafka brokers")
		dsn       = flag.String("dsn", os.Getenv("DATABASE_URL"), "PostgreSQL connection string")
		topic     = flag.String("topic", "", "topic to consume")
		group     = flag.String("group", "", "consumer group")
		table     = flag.String("table", "", "upsert table (postgres.EnsureTables shape)")
		consumers = flag.Int("consumers", 1, "consumer threads (Spring: concurrency = partitions)")
		poolSize  = flag.Int("pool", 10, "connection pool size (HikariCP default 10)")
		records   = flag.Int64("records", 0, "stop after this many records (0: only -duration)")
		duration  = flag.Duration("duration", 30*time.Second, "stop after this long")
	)
	flag.Parse()
	if *topic == "" || *group == "" || *table == "" || *brokers == "" || *dsn == "" {
		fmt.Fprintln(os.Stderr, "naive: -topic, -group, -table, -brokers and -dsn are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	pc, err := pgxpool.ParseConfig(*dsn)
	if err != nil {
		fail(err)
	}
	pc.MaxConns, pc.MinConns = int32(*poolSize), int32(*poolSize)
	pc.ConnConfig.RuntimeParams["application_name"] = "bench-naive/" + *group
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		fail(err)
	}
	defer pool.Close()
	// Hikari fills the pool at start: do the same.
	for pool.Stat().TotalConns() < int32(*poolSize) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	stmt := fmt.Sprintf(upsertSQL, pgx.Identifier{*table}.Sanitize())

	var (
		applied atomic.Int64
		firstNs atomic.Int64
		start   = time.Now()
		runCtx  context.Context
		cancel  context.CancelFunc
	)
	runCtx, cancel = context.WithTimeout(ctx, *duration)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, *consumers)
	for range *consumers {
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...),
			kgo.ConsumerGroup(*group), kgo.ConsumeTopics(*topic), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(1<<20))
		if err != nil {
			fail(err)
		}
		wg.Go(func() {
			defer cl.Close()
			for runCtx.Err() == nil {
				fs := cl.PollFetches(runCtx)
				if runCtx.Err() != nil {
					return
				}
				fs.EachError(func(t string, p int32, err error) { fmt.Fprintf(os.Stderr, "naive: fetch %s[%d]: %v\n", t, p, err) })
				var werr error
				fs.EachRecord(func(r *kgo.Record) {
					if werr != nil || runCtx.Err() != nil {
						return
					}
					// One transaction per record (auto-commit), retried while the database is away.
					for {
						_, werr = pool.Exec(runCtx, stmt, string(r.Key), string(r.Value), r.Partition, r.Offset, r.Timestamp)
						if werr == nil || runCtx.Err() != nil {
							break
						}
						fmt.Fprintf(os.Stderr, "naive: upsert: %v\n", werr)
						time.Sleep(200 * time.Millisecond)
					}
					if werr == nil {
						firstNs.CompareAndSwap(0, time.Since(start).Nanoseconds())
						if applied.Add(1) == *records && *records > 0 {
							cancel()
						}
					}
				})
				if werr != nil {
					if runCtx.Err() == nil {
						errs <- werr
					}
					return
				}
				if err := cl.CommitUncommittedOffsets(runCtx); err != nil && runCtx.Err() == nil {
					fmt.Fprintf(os.Stderr, "naive: commit: %v\n", err)
				}
			}
		})
	}
	wg.Wait()
	end := time.Since(start)
	select {
	case err := <-errs:
		fail(err)
	default:
	}
	first := time.Duration(firstNs.Load())
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{
		"records": applied.Load(), "seconds": (end - first).Seconds(), "first_ms": first.Milliseconds(),
	})
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "naive: %v\n", err)
	os.Exit(1)
}

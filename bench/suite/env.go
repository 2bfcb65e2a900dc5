package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
	"github.com/sinkworker/sinkworker/bench/internal/testbed"
)

// services are the harness's own connections. The database side is a pool,
// so a PostgreSQL restart (the chaos suite does that) costs a failed query,
// not the run.
type services struct {
	root    string
	brokers []string
	dsn     string
	kafka   *kgo.Client
	adm     *kadm.Client
	db      *pgxpool.Pool // application_name bench-suite
}

const servicesHint = testbed.ServicesHint

func connect(ctx context.Context, root string) (*services, error) {
	ts, err := testbed.Connect(ctx, "bench-suite", kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		return nil, err
	}
	s := &services{root: root, brokers: ts.Brokers, dsn: ts.DSN, kafka: ts.Kafka, adm: ts.Adm, db: ts.DB}
	if err := s.waitUp(ctx, 30*time.Second); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *services) close() {
	s.kafka.Close()
	s.db.Close()
}

// waitUp waits until both services answer, for at most limit.
func (s *services) waitUp(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for said := false; ; {
		pgErr := s.db.Ping(ctx)
		_, kErr := s.adm.ListBrokers(ctx)
		if pgErr == nil && kErr == nil {
			if said {
				logf("services answer again")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("services not reachable after %s (PostgreSQL: %v; Kafka: %v); %s", limit, pgErr, kErr, servicesHint)
		}
		if !said {
			logf("waiting for the services (PostgreSQL: %v; Kafka: %v) ...", pgErr, kErr)
			said = true
		}
		time.Sleep(time.Second)
	}
}

// fingerprint identifies the running PostgreSQL and broker processes: when
// it changes during a measurement, someone restarted a service (the chaos
// suite, security work) and the point is measured again.
func (s *services) fingerprint(ctx context.Context) string {
	var pg string
	if err := s.db.QueryRow(ctx, `SELECT pg_postmaster_start_time()::text`).Scan(&pg); err != nil {
		pg = "?"
	}
	pid, _ := os.ReadFile(filepath.Join(s.root, ".services", "kafka", "kafka.pid"))
	return "pg " + pg + ", broker pid " + strings.TrimSpace(string(pid))
}

// committed is the sum of a group's committed Kafka offsets on topic.
func (s *services) committed(ctx context.Context, group, topic string) (int64, error) {
	resp, err := s.adm.FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return 0, err
	}
	var sum int64
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			sum += o.At
		}
	})
	return sum, nil
}

// dropTable is best effort.
func (s *services) dropTable(t string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.db.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{t}.Sanitize()); err != nil {
		logf("cleanup: drop table %s: %v", t, err)
	}
}

// dropGroup removes a group's sink_offsets rows and Kafka group, best effort.
func (s *services) dropGroup(group string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.db.Exec(ctx, "DELETE FROM sink_offsets WHERE consumer_group = $1", group); err != nil && !sinkdb.UndefinedTable(err) {
		logf("cleanup: sink_offsets rows of %s: %v", group, err)
	}
	// Non-empty: a killed member stays until its session times out.
	if err := broker.DeleteGroup(ctx, s.adm, group); err != nil && !errors.Is(err, kerr.NonEmptyGroup) {
		logf("cleanup: delete group %s: %v", group, err)
	}
}

func (s *services) dropTopics(topics ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, t := range topics {
		if err := broker.DeleteTopic(ctx, s.adm, t); err != nil {
			logf("cleanup: delete topic %s: %v", t, err)
		}
	}
}

// brokerSettings reads named settings of the first broker, for the report:
// "name value" each, "name ?" when unreadable.
func (s *services) brokerSettings(ctx context.Context, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + " ?"
	}
	brokers, err := s.adm.ListBrokers(ctx)
	if err != nil || len(brokers) == 0 {
		return out
	}
	rcs, err := s.adm.DescribeBrokerConfigs(ctx, brokers[0].NodeID)
	if err != nil || len(rcs) == 0 {
		return out
	}
	for _, c := range rcs[0].Configs {
		for i, n := range names {
			if c.Key == n {
				out[i] = n + " " + c.MaybeValue()
			}
		}
	}
	return out
}

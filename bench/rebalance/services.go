package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// services are the harness's own connections to the broker and the
// database.
type services struct {
	brokers []string
	dsn     string
	kafka   *kgo.Client
	adm     *kadm.Client
	db      *pgx.Conn // set-up, checks and clean-up; the recorder has its own
}

const servicesHint = `start them with: scripts/services up && eval "$(scripts/services env)"`

// connect fails loudly when either service is missing.
func connect(ctx context.Context) (*services, error) {
	s := &services{dsn: os.Getenv("DATABASE_URL")}
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		s.brokers = strings.Split(b, ",")
	}
	if len(s.brokers) == 0 || s.dsn == "" {
		return nil, errors.New("KAFKA_BROKERS and DATABASE_URL must be set; " + servicesHint)
	}
	var err error
	if s.db, err = dial(ctx, s.dsn, "bench-rebalance"); err != nil {
		return nil, err
	}
	if s.kafka, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...)); err != nil {
		s.db.Close(ctx)
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.kafka.Ping(cctx); err != nil {
		s.close()
		return nil, fmt.Errorf("Kafka is not reachable at %s (%w); %s", strings.Join(s.brokers, ","), err, servicesHint)
	}
	s.adm = kadm.NewClient(s.kafka)
	return s, nil
}

// dial opens one connection named app (application_name); the error never
// holds the DSN.
func dial(ctx context.Context, dsn, app string) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid pgx connection string")
	}
	pc.RuntimeParams["application_name"] = app
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, pc)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL is not reachable (%w); %s", err, servicesHint)
	}
	return c, nil
}

func (s *services) close() {
	s.kafka.Close()
	s.db.Close(context.Background())
}

// brokerSetting reads named settings of the first broker, for the report:
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

// cleanup drops what the run created; each step is best effort and says
// when it fails. Groups are deleted last: a group with members left fails
// with NonEmptyGroup, so it is tried for a while.
func (s *services) cleanup(fleets []*fleet) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var groups []string
	for _, f := range fleets {
		groups = append(groups, f.group)
		if _, err := s.db.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{f.table}.Sanitize()); err != nil {
			logf("cleanup: drop table %s: %v", f.table, err)
		}
		for _, t := range []string{f.topic, f.topic + ".dlq"} {
			if err := broker.DeleteTopic(ctx, s.adm, t); err != nil {
				logf("cleanup: delete topic %s: %v", t, err)
			}
		}
	}
	if _, err := s.db.Exec(ctx, "DELETE FROM sink_offsets WHERE consumer_group = ANY($1)", groups); err != nil &&
		!sinkdb.UndefinedTable(err) {
		logf("cleanup: delete sink_offsets rows: %v", err)
	}
	for _, g := range groups {
		for deadline := time.Now().Add(30 * time.Second); ; {
			err := broker.DeleteGroup(ctx, s.adm, g)
			if err == nil {
				break
			}
			if !errors.Is(err, kerr.NonEmptyGroup) || time.Now().After(deadline) {
				logf("cleanup: delete group %s: %v", g, err)
				break
			}
			time.Sleep(time.Second)
		}
	}
	logf("cleaned up topics, groups, tables and sink_offsets rows (use -keep to keep them)")
}

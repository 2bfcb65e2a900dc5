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
	db      *pgx.Conn // polling and checks, application_name bench-drain
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

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pc, err := pgx.ParseConfig(s.dsn)
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid pgx connection string")
	}
	pc.RuntimeParams["application_name"] = "bench-drain"
	if s.db, err = pgx.ConnectConfig(cctx, pc); err != nil {
		return nil, fmt.Errorf("PostgreSQL is not reachable (%w); %s", err, servicesHint)
	}

	if s.kafka, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...)); err != nil {
		s.db.Close(ctx)
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if err := s.kafka.Ping(cctx); err != nil {
		s.close()
		return nil, fmt.Errorf("Kafka is not reachable at %s (%w); %s", strings.Join(s.brokers, ","), err, servicesHint)
	}
	s.adm = kadm.NewClient(s.kafka)
	return s, nil
}

func (s *services) close() {
	s.kafka.Close()
	s.db.Close(context.Background())
}

// cleanup drops what the run created; each step is best effort and says
// when it fails.
func (s *services) cleanup(n names) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, t := range []string{n.table, n.ceiling, n.full} {
		if _, err := s.db.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{t}.Sanitize()); err != nil {
			logf("cleanup: drop table %s: %v", t, err)
		}
	}
	if _, err := s.db.Exec(ctx, "DELETE FROM sink_offsets WHERE consumer_group = ANY($1)",
		[]string{n.group, n.fullGroup}); err != nil && !sinkdb.UndefinedTable(err) {
		logf("cleanup: delete sink_offsets rows: %v", err)
	}
	for _, t := range []string{n.topic, n.topic + ".dlq"} {
		if err := broker.DeleteTopic(ctx, s.adm, t); err != nil {
			logf("cleanup: delete topic %s: %v", t, err)
		}
	}
	if err := broker.DeleteGroup(ctx, s.adm, n.group); err != nil {
		logf("cleanup: delete group %s: %v", n.group, err)
	}
	logf("cleaned up topic %s, group %s, tables and sink_offsets rows (use -keep to keep them)", n.topic, n.group)
}

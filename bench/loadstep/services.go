package main

import (
	"context"
	"errors"
	"fmt"
	"net"
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

const servicesHint = `scripts/services up && eval "$(scripts/services env)"`

// services are the harness's own connections: a small pool for polling and
// housekeeping (application_name bench-loadstep) and an admin client.
type services struct {
	brokers []string
	dsn     string // holds the password: never in a log line or error
	db      *pgxpool.Pool
	kafka   *kgo.Client
	adm     *kadm.Client
}

// connect fails at once when either service does not answer within 10 s.
func connect(ctx context.Context) (*services, error) {
	ts, err := testbed.Connect(ctx, "bench-loadstep")
	if err != nil {
		return nil, err
	}
	s := &services{brokers: ts.Brokers, dsn: ts.DSN, db: ts.DB, kafka: ts.Kafka, adm: ts.Adm}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.db.Ping(pingCtx); err != nil {
		s.close()
		return nil, fmt.Errorf("PostgreSQL does not answer: %w; start the services with: %s", err, servicesHint)
	}
	if _, err := s.adm.ListBrokers(pingCtx); err != nil {
		s.close()
		return nil, fmt.Errorf("Kafka does not answer at %s: %w; start the services with: %s", strings.Join(s.brokers, ","), err, servicesHint)
	}
	return s, nil
}

func (s *services) close() {
	s.kafka.Close()
	s.db.Close()
}

// forget drops the sink's table, its group's sink_offsets rows and Kafka
// group, and the topic with its dead-letter topic; best effort, logged.
func (s *services) forget(topic, group, table string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.db.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize()); err != nil {
		logf("cleanup: drop table %s: %v", table, err)
	}
	if _, err := s.db.Exec(ctx, "DELETE FROM sink_offsets WHERE consumer_group = $1", group); err != nil && !sinkdb.UndefinedTable(err) {
		logf("cleanup: sink_offsets rows of %s: %v", group, err)
	}
	if err := broker.DeleteGroup(ctx, s.adm, group); err != nil && !errors.Is(err, kerr.NonEmptyGroup) {
		logf("cleanup: delete group %s: %v", group, err)
	}
	for _, t := range []string{topic, topic + ".dlq"} {
		if err := broker.DeleteTopic(ctx, s.adm, t); err != nil {
			logf("cleanup: delete topic %s: %v", t, err)
		}
	}
}

// freeAddr is a loopback address with a port free now, for a worker's
// HTTP_ADDR (the worker's own :0 would not tell the harness its port).
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

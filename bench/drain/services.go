package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

// createTopic creates topic with parts partitions (replication factor 1:
// the test broker is a single node) and waits until every partition has a
// leader.
func (s *services) createTopic(ctx context.Context, topic string, parts int32) error {
	resp, err := s.adm.CreateTopic(ctx, parts, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		ends, err := s.endOffsets(ctx, topic)
		if err == nil && len(ends) == int(parts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s: partitions have no leader after 30s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// endOffsets returns each partition's high watermark.
func (s *services) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	listed, err := s.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends, nil
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
		[]string{n.group, n.fullGroup}); err != nil && !undefinedTable(err) {
		logf("cleanup: delete sink_offsets rows: %v", err)
	}
	for _, t := range []string{n.topic, n.topic + ".dlq"} {
		resp, err := s.adm.DeleteTopic(ctx, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			logf("cleanup: delete topic %s: %v", t, err)
		}
	}
	resp, err := s.adm.DeleteGroup(ctx, n.group)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		logf("cleanup: delete group %s: %v", n.group, err)
	}
	logf("cleaned up topic %s, group %s, tables and sink_offsets rows (use -keep to keep them)", n.topic, n.group)
}

// undefinedTable reports SQLSTATE 42P01: sink_offsets does not exist until
// some worker has created it.
func undefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

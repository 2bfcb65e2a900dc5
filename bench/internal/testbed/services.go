package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ServicesHint tells how to start the services a harness needs.
const ServicesHint = `start them with: scripts/services up && eval "$(scripts/services env)"`

// Services are a harness's own connections to the broker and the database
// of KAFKA_BROKERS and DATABASE_URL: a small pool named app in
// pg_stat_activity, a Kafka client with opts, and its admin client.
type Services struct {
	Brokers []string
	DSN     string // holds the password: never in a log line or error
	DB      *pgxpool.Pool
	Kafka   *kgo.Client
	Adm     *kadm.Client
}

// Connect opens the connections without waiting for either service to
// answer; errors name what is missing, never the DSN.
func Connect(ctx context.Context, app string, opts ...kgo.Opt) (*Services, error) {
	s := &Services{DSN: os.Getenv("DATABASE_URL")}
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		s.Brokers = strings.Split(b, ",")
	}
	if len(s.Brokers) == 0 || s.DSN == "" {
		return nil, errors.New("KAFKA_BROKERS and DATABASE_URL must be set; " + ServicesHint)
	}
	pc, err := pgxpool.ParseConfig(s.DSN)
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid pgx connection string")
	}
	pc.ConnConfig.RuntimeParams["application_name"] = app
	pc.MaxConns = 4
	if s.DB, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	if s.Kafka, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.Brokers...)}, opts...)...); err != nil {
		s.DB.Close()
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	s.Adm = kadm.NewClient(s.Kafka)
	return s, nil
}

// Close closes both.
func (s *Services) Close() {
	s.Kafka.Close()
	s.DB.Close()
}

// Command outbox is the transactional outbox, end to end and runnable: a
// "user service" signs users up in the source database, each signup ONE
// transaction that inserts the user row and an outbox row (some roll back);
// Debezium's outbox EventRouter publishes the committed outbox rows from the
// write-ahead log to a topic; sinkworker sinks that topic into a points table
// in the target database; and `sinkworker reconcile` proves users == points.
// Midway the worker is SIGKILLed and restarted and Kafka Connect restarted.
//
//	cd /work/main && eval "$(scripts/services env)" && eval "$(scripts/cdc env)"
//	go run ./examples/outbox -users 100000 -rollback-pct 10
//
// It needs KAFKA_BROKERS, DATABASE_URL (target), SOURCE_DATABASE_URL (a
// PostgreSQL with wal_level=logical, scripts/cdc's) and KAFKA_CONNECT_URL
// (Kafka Connect with the Debezium PostgreSQL connector), and the repository
// (for scripts/cdc and to build cmd/sinkworker). See README.md here.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var c Config
	flag.Int64Var(&c.Users, "users", 10000, "committed signups: the users (and points) rows at the end")
	flag.Float64Var(&c.RollbackPct, "rollback-pct", 10, "share of signup attempts that roll back after writing both rows, in percent [0, 90]")
	flag.IntVar(&c.Clients, "clients", 8, "concurrent signup clients (source connections)")
	flag.Float64Var(&c.Rate, "rate", 0, "signup attempts per second, all clients together; 0: as fast as they go")
	flag.IntVar(&c.Partitions, "partitions", 3, "partitions of the event topic")
	flag.StringVar(&c.Run, "run", "", "name of this run: tables users_RUN, outbox_RUN, points_RUN, topic RUN.outbox.event.user, connector, slot, group (default: ob + a random suffix)")
	flag.BoolVar(&c.KillWorker, "kill-worker", true, "SIGKILL the worker a third of the way through the signups and start it again")
	flag.BoolVar(&c.RestartConnect, "restart-connect", true, "restart Kafka Connect (scripts/cdc connect-restart) two thirds of the way through the signups")
	flag.DurationVar(&c.DrainTimeout, "drain-timeout", 15*time.Minute, "how long to wait, after the signups, for points to catch up with users")
	flag.StringVar(&c.Sinkworker, "sinkworker", "", "sinkworker binary to run (default: go build ./cmd/sinkworker into a temporary directory)")
	flag.BoolVar(&c.Keep, "keep", false, "keep the tables, topic, connector and group after the run (default: remove them)")
	flag.Parse()

	c.Env = Env{
		KafkaBrokers:    os.Getenv("KAFKA_BROKERS"),
		TargetURL:       os.Getenv("DATABASE_URL"),
		SourceURL:       os.Getenv("SOURCE_DATABASE_URL"),
		KafkaConnectURL: os.Getenv("KAFKA_CONNECT_URL"),
	}
	if err := c.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "outbox: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := Run(ctx, c, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "outbox: %v\n", err)
		os.Exit(1)
	}
	if !r.Agree() {
		os.Exit(1)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/sinkworker/sinkworker/sink"
	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/postgres"
	"github.com/sinkworker/sinkworker/sink/redrive"
	"github.com/twmb/franz-go/pkg/kgo"
)

const redriveUsage = `Usage: sinkworker redrive

Re-sinks the records in the dead-letter topics of KAFKA_TOPICS (DLQ_TOPIC, or <topic>.dlq),
from their start to their end when it begins (committed letters only; it stops early for
letters retention has deleted), into the tables the worker writes, with their source
coordinates and timestamp, once the cause has been fixed. Same environment as the worker.
Newer data is never overwritten nor deleted: a letter replaces or deletes a row only when the
row comes from an earlier offset of the same partition; otherwise it is skipped (in
SINK_MAPPING=columns, a table without kafka_partition and kafka_offset columns only gets keys
it does not have). Letters of topics outside KAFKA_TOPICS (a shared DLQ_TOPIC) are left alone
and counted. It keeps no state and can be run again. Prints how many landed, were skipped,
belong to other topics and failed again.

Exit status: 0 when nothing failed again, 1 when some did (they stay in the dead-letter topic),
2 for a bad setting.
`

func runRedrive(stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, ok := loadConfig(ctx, stderr)
	if !ok {
		return 2
	}
	log := newLogger(cfg, stderr)
	res := redrive.Result{Failed: map[string]int{}}
	cfg, err := cfg.ResolveTopics(ctx)
	var kafka []kgo.Opt
	if err == nil {
		kafka, err = cfg.ClientOpts()
	}
	var registry *decode.Registry
	if err == nil {
		registry, err = cfg.NewRegistry()
	}
	if err == nil {
		res, err = redrive.Run(ctx, redrive.Config{
			Kafka:           kafka,
			DLQTopic:        cfg.DLQTopic,
			DatabaseURL:     cfg.DatabaseURL,
			ApplicationName: sink.ApplicationName(cfg.Group, cfg.Member),
			Pool:            cfg.Pool,
			Postgres:        cfg.Postgres(),
			Decode:          func(pk func() []string) decode.Config { return cfg.Decode(registry, pk) },
			TxTimeout:       cfg.TxTimeout,
		}, log)
	}
	fmt.Fprintf(os.Stdout, "redrive: read %d, landed %d, skipped %d (already there or newer), other topics %d, failed again %d\n",
		res.Read, res.Landed, res.Skipped, res.OtherTopics, res.FailedTotal())
	classes := make([]string, 0, len(res.Failed))
	for c := range res.Failed {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		fmt.Fprintf(os.Stdout, "  failed again, %s: %d\n", c, res.Failed[c])
	}
	switch {
	case errors.Is(err, sink.ErrConfig), errors.Is(err, postgres.ErrNoPrimaryKey):
		log.Error("redrive", "err", err)
		return 2
	case err != nil:
		log.Error("redrive", "err", err)
		return 1
	case res.FailedTotal() > 0:
		return 1
	}
	return 0
}

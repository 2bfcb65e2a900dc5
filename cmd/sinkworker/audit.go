package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/sinkworker/sinkworker/sink"
	"github.com/sinkworker/sinkworker/sink/audit"
)

const auditUsage = `Usage: sinkworker audit [-json]

Checks, per partition of KAFKA_TOPICS, that the database and Kafka agree: the database's
next_offset against the log start, the log end and the group's committed offset. Lag runs
to the last stable offset under read_committed (KAFKA_ISOLATION_LEVEL), else to the log end.
A next_offset beyond the log end (topic recreated) or below the log start (retention deleted
records before they were sunk) halts the partition; the problem names the command that
resolves it (sinkworker offsets reset). One query and four Kafka requests, whatever the
table's size. Same environment as the worker.

Exit status: 0 when consistent, 1 when a problem is found, 2 for a bad setting.

`

func runAudit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON (one object with a row per partition) instead of a table")
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return exitFor(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, ok := loadConfig(ctx, stderr)
	if !ok {
		return 2
	}
	acfg, err := auditConfig(ctx, cfg)
	var rows []audit.Row
	if err == nil {
		rows, err = audit.Audit(ctx, acfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sinkworker audit: %v\n", err)
		if errors.Is(err, sink.ErrConfig) {
			return 2
		}
		return 1
	}
	problems := 0
	for _, r := range rows {
		if r.Problem != "" {
			problems++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"group": cfg.Group, "consistent": problems == 0, "partitions": rows})
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tDB OFFSET\tKAFKA COMMITTED\tLOG START\tLOG END\tLAG\tSTATUS")
		for _, r := range rows {
			status := "ok"
			if r.Problem != "" {
				status = "PROBLEM: " + r.Problem
			} else if r.Note != "" {
				status = "ok (" + r.Note + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Topic, r.Partition, dash(r.DBNextOffset),
				dash(r.KafkaCommitted), dash(r.LogStart), r.LogEnd, r.Lag, status)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d partitions, %d with problems\n", len(rows), problems)
	}
	if problems > 0 {
		return 1
	}
	return 0
}

// auditConfig is what the audit and offsets reset commands need of the
// worker's settings (the topics KAFKA_TOPICS_REGEX matches now, if set).
func auditConfig(ctx context.Context, cfg sink.Config) (audit.Config, error) {
	cfg, err := cfg.ResolveTopics(ctx)
	if err != nil {
		return audit.Config{}, err
	}
	kafka, err := cfg.ClientOpts()
	if err != nil {
		return audit.Config{}, err
	}
	return audit.Config{
		Kafka:         kafka,
		DatabaseURL:   cfg.DatabaseURL,
		Offsets:       cfg.Postgres().Offsets(),
		Topics:        cfg.Topics,
		ReadCommitted: cfg.IsolationLevel == sink.IsolationReadCommitted,
		Timeout:       cfg.TxTimeout,
	}, nil
}

func dash(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/sethvargo/go-envconfig"

	"github.com/sinkworker/sinkworker/sink"
	"github.com/sinkworker/sinkworker/sink/audit"
)

const offsetsUsage = `Usage: sinkworker offsets reset --topic T [--partition N] --to earliest|latest|OFFSET [--execute]

Moves the database's next_offset (SINK_OFFSETS_TABLE, for KAFKA_GROUP) of the topic's
partitions: the deliberate way past an offset the log no longer has (the topic was
recreated, or retention deleted records before they were sunk), which halts the
partition. earliest is the log start, latest the log end (the last stable offset under
read_committed); an OFFSET must lie within the log.

Without --execute it is a dry run: it prints, per partition, the current next_offset and
the one it would set, and changes nothing. With --execute it writes them in one
transaction holding the rows' locks, then copies them to the group's committed offsets
in Kafka if the group allows it. Workers read the database's offsets when a partition
is assigned: stop them first, or restart them after.

Same environment as the worker; KAFKA_TOPICS may be left unset.
Exit status: 0 done, 1 refused or failed, 2 for a bad flag or setting.

`

func runOffsets(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "reset" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stderr, offsetsUsage)
			return 0
		}
		fmt.Fprint(stderr, "sinkworker offsets: want the subcommand reset\n\n"+offsetsUsage)
		return 2
	}
	fs := flag.NewFlagSet("offsets reset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	topic := fs.String("topic", "", "the topic (required)")
	partition := fs.Int("partition", -1, "one partition; every partition of the topic when omitted")
	to := fs.String("to", "", "earliest, latest or an offset (required)")
	execute := fs.Bool("execute", false, "write the change; without it, only print what would change")
	fs.Usage = func() { fmt.Fprint(stderr, offsetsUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		return exitFor(err)
	}
	var bad []error
	if *topic == "" {
		bad = append(bad, errors.New("--topic is required"))
	}
	if *to == "" {
		bad = append(bad, errors.New("--to is required (earliest, latest or an offset)"))
	}
	if *partition < -1 {
		bad = append(bad, fmt.Errorf("--partition must be 0 or more, got %d", *partition))
	}
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if len(bad) > 0 {
		fmt.Fprintf(stderr, "sinkworker offsets reset: %v\n", errors.Join(bad...))
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// KAFKA_TOPICS is required by the worker's settings; here the topic
	// comes from --topic.
	lookup := envconfig.MultiLookuper(envconfig.OsLookuper(), envconfig.MapLookuper(map[string]string{"KAFKA_TOPICS": *topic}))
	cfg, err := sink.LoadConfig(ctx, lookup)
	if err != nil {
		fmt.Fprintf(stderr, "sinkworker: %v\n", err)
		return 2
	}
	acfg, err := auditConfig(ctx, cfg)
	var (
		plan     []audit.OffsetReset
		kafkaErr error
	)
	if err == nil {
		plan, kafkaErr, err = audit.Reset(ctx, acfg, audit.ResetRequest{
			Topic: *topic, Partition: int32(*partition), To: *to, Execute: *execute,
		})
	}
	if err != nil {
		fmt.Fprintf(stderr, "sinkworker offsets reset: %v\n", err)
		if errors.Is(err, sink.ErrConfig) {
			return 2
		}
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLOG START\tLOG END\tNEXT_OFFSET NOW\tNEXT_OFFSET SET")
	for _, p := range plan {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\n", p.Topic, p.Partition, p.LogStart, p.LogEnd, dash(p.Current), p.Target)
	}
	tw.Flush()
	if !*execute {
		fmt.Fprintf(stdout, "dry run for group %s: nothing changed; add --execute to write\n", cfg.Group)
		return 0
	}
	fmt.Fprintf(stdout, "written for group %s; workers pick it up when the partitions are next assigned (restart them)\n", cfg.Group)
	if kafkaErr != nil {
		fmt.Fprintf(stderr, "sinkworker offsets reset: warning: %v (the database's offsets are written and are the ones workers use)\n", kafkaErr)
	}
	return 0
}

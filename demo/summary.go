package demo

import (
	"fmt"
	"strings"
)

// printSummary prints the final check and how to go on from here.
func (r *run) printSummary() {
	res, n := &r.res, r.names
	p := func(format string, args ...any) { fmt.Fprintf(r.out, format+"\n", args...) }
	verdict := "PASS"
	if !res.Passed {
		verdict = "FAIL"
	}
	p("\nResult: %s in %.1fs", verdict, res.Elapsed.Seconds())
	p("  produced      %s records in %.1fs: %s user-created, %s points-changed, %s deletes (tombstones), %d bad",
		count(res.Records), res.ProduceTime.Seconds(), count(res.Creates), count(res.Changes), count(res.Deletes), res.Bad)
	p("  sunk          sum(next_offset) in sink_offsets = %s (one row per partition is the whole audit)", count(res.Sunk))
	if s := res.SunkAfter.Seconds(); s > 0 {
		peak := ""
		if res.PeakRate > 0 {
			peak = fmt.Sprintf(", peak %s/s", count(int64(res.PeakRate)))
		}
		p("                all sunk %.1fs after the first record was produced: %s records/s on average (kill pause included)%s",
			s, count(int64(float64(res.Records)/s)), peak)
	}
	eq := "=="
	if res.Rows != res.Model || res.Mismatch > 0 {
		eq = "!="
	}
	p("  table %-7s %s rows %s model %s rows; %d keys differ (every value compared as jsonb)",
		n.table, count(res.Rows), eq, count(res.Model), res.Mismatch)
	if len(res.Columns) > 0 {
		p("                created by the workers from the %s value schema (registry: srfake), primary key from the key schema:", res.Format)
		for _, c := range res.Columns {
			null := ""
			if !c.Nullable {
				null = " not null"
			}
			p("                  %-16s %s%s", c.Name, c.Type, null)
		}
		p("                a few rows (as jsonb, Kafka coordinates left out):")
		for _, row := range res.SampleRows {
			p("                  %s", row)
		}
	}
	p("  dead-lettered %d records to %s, %d bad records produced:", len(res.DeadLetters), n.dlq, res.Bad)
	for _, d := range res.DeadLetters {
		kind := d.Kind
		if kind == "" {
			kind = "NOT A BAD RECORD"
		}
		dup := ""
		if d.Duplicate {
			dup = " (duplicate)"
		}
		p("                  partition %d offset %d%s: %s: %s [%s]", d.Partition, d.Offset, dup, d.Class, d.Message, kind)
	}
	p("  connections   peak %d held by the fleet (pg_stat_activity) <= %d partitions, with %d workers; a pool of 10 per worker would hold %d",
		res.PeakConns, res.Partitions, r.opts.Workers, 10*r.opts.Workers)
	if rc := res.Recovery; rc != nil {
		p("  recovery      %s SIGKILLed holding %s at %s records sunk; survivors took over after %.1fs (session timeout);",
			rc.Worker, plural(rc.Held, "partition"), count(rc.AtSunk), rc.Moved.Seconds())
		p("                restarted, it resumed from the database's offsets and the group was whole %.1fs later", rc.Rejoined.Seconds())
	}
	p("  services      broker: %s; PostgreSQL: %s", res.Broker, res.Postgres)
	for _, prob := range res.Problems {
		p("  PROBLEM       %s", prob)
	}
	if n.shared {
		p("\nLeft in place for a look: topics %s and %s, table %s, rows of group %s in sink_offsets.", n.topic, n.dlq, n.table, n.group)
	}
	p("\nRun the same worker against your own Kafka and PostgreSQL:")
	p("  %s", r.realCommand())
}

// realCommand is the one line that runs one worker of this demo's shape
// against real services (never with a password in it).
func (r *run) realCommand() string {
	brokers, db := "localhost:9092", "'postgres://user:password@localhost:5432/db'"
	if len(r.opts.Brokers) > 0 {
		brokers = strings.Join(r.opts.Brokers, ",")
	}
	if r.opts.DatabaseURL != "" {
		db = `"$DATABASE_URL"`
	}
	format := ""
	if f := r.opts.Format; f != FormatJSON {
		format = fmt.Sprintf("SINK_MAPPING=columns SINK_KEY_FORMAT=%s SINK_VALUE_FORMAT=%s SCHEMA_REGISTRY_URL=http://localhost:8081 ", f, f)
	}
	return fmt.Sprintf("KAFKA_BROKERS=%s DATABASE_URL=%s KAFKA_TOPICS=%s SINK_TABLE_MAP=%s=%s %sgo run ./cmd/sinkworker",
		brokers, db, r.names.topic, r.names.topic, r.names.table, format)
}

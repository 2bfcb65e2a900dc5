package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
)

// The formats scenario: the same records as plain JSON and as Avro
// (Confluent wire format, schemas in the registry) drained by one worker
// each into a typed table (SINK_MAPPING=columns, upsert), in alternating
// pairs; the figure is avro/json records/s after start-up.

// formatsOptions are the scenario's flags.
type formatsOptions struct {
	parts int // -formats-partitions
	pairs int // -formats-pairs
}

// formatRun is one drain of one topic.
type formatRun struct {
	pointResult
	format string // json or avro
	pair   int    // 1-based
	table  string // kept until the pair is compared
	group  string
}

// formatsResult is the scenario's measurements.
type formatsResult struct {
	parts, records, rows     int
	keySchemaID, valSchemaID int
	jsonBytes, avroBytes     int64 // value bytes of all records per topic
	runs                     []formatRun
	ratios, steadyRatios     []float64 // avro/json per complete pair
	checked                  []string  // what the pair comparisons found
}

// formatsDDL returns the JSON table's CREATE TABLE for table.
func formatsDDL(table string) string {
	return fmt.Sprintf(orderTableDDL, pgx.Identifier{table}.Sanitize())
}

// formats runs the scenario; a failed run is in the report and the others go on.
func (b *bench) formats(ctx context.Context, topics *[]string) (*formatsResult, error) {
	s, o := b.s, b.o
	regURL := os.Getenv("SCHEMA_REGISTRY_URL")
	if regURL == "" {
		return nil, errors.New("SCHEMA_REGISTRY_URL is not set; " + servicesHint)
	}
	reg, err := sr.NewClient(sr.URLs(regURL))
	if err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	res := &formatsResult{parts: o.formats.parts, records: o.records}
	recs := newOrders(o.records, o.keys, o.formats.parts)
	res.rows, _ = recs.expected()
	jsonTopic := fmt.Sprintf("bench-suite-%s-fmt-json-p%d", b.stamp, res.parts)
	avroTopic := fmt.Sprintf("bench-suite-%s-fmt-avro-p%d", b.stamp, res.parts)
	*topics = append(*topics, jsonTopic, jsonTopic+".dlq", avroTopic, avroTopic+".dlq")
	defer func() {
		if !o.keep {
			b.forgetSubjects(reg, jsonTopic, avroTopic)
		}
	}()

	var codec *avroCodec
	for _, t := range []struct {
		topic string
		enc   func(order, int) ([]byte, []byte, error)
	}{
		{jsonTopic, jsonOrders},
		{avroTopic, func(r order, i int) ([]byte, []byte, error) { return codec.encode(r, i) }},
	} {
		err := b.retry(ctx, "produce "+t.topic, func() error {
			s.dropTopics(t.topic)
			if err := broker.CreateTopic(ctx, s.adm, t.topic, int32(res.parts)); err != nil {
				return err
			}
			if t.topic == avroTopic && codec == nil {
				var err error
				if codec, err = registerAvro(ctx, reg, avroTopic); err != nil {
					return err
				}
				res.keySchemaID, res.valSchemaID = codec.keyID, codec.valueID
			}
			start := time.Now()
			if err := produceOrders(ctx, s, recs, t.topic, t.enc); err != nil {
				return err
			}
			logf("  produced %d records to %s (%d partitions) at %.0f records/s", o.records, t.topic, res.parts, rate(int64(o.records), time.Since(start)))
			return nil
		}, nil)
		if err != nil {
			return res, err
		}
	}
	for i := range min(len(recs.recs), 1000) { // value sizes, from a sample
		_, jv, _ := jsonOrders(recs.recs[i], i)
		_, av, _ := codec.encode(recs.recs[i], i)
		res.jsonBytes, res.avroBytes = res.jsonBytes+int64(len(jv)), res.avroBytes+int64(len(av))
	}
	res.jsonBytes, res.avroBytes = res.jsonBytes/int64(min(len(recs.recs), 1000)), res.avroBytes/int64(min(len(recs.recs), 1000))

	// Alternate the order within pairs so that neither format always goes
	// first (a warmer page cache, a quieter machine).
	var failed []string
	for pair := 1; pair <= o.formats.pairs; pair++ {
		order := []string{"json", "avro"}
		if pair%2 == 0 {
			order = []string{"avro", "json"}
		}
		got := map[string]int{} // index in res.runs
		for _, f := range order {
			topic := map[string]string{"json": jsonTopic, "avro": avroTopic}[f]
			label := fmt.Sprintf("formats pair %d/%d, %s", pair, o.formats.pairs, f)
			var run formatRun
			err := b.retry(ctx, label, func() error {
				if run.table != "" { // a disturbed attempt that had finished
					b.forget(run.table, run.group)
				}
				var err error
				run, err = b.formatRun(ctx, f, topic, recs, regURL)
				return err
			}, func(a int) { run.attempts = a })
			if err != nil {
				b.rep.failed(label, err)
				failed = append(failed, label)
				continue
			}
			run.pair = pair
			logf("  %s: %.0f records/s, %.0f after start-up (first commit at %.1f s), %.1f s CPU, max RSS %.0f MiB",
				label, run.rate(), run.steadyRate(), run.firstCommit.Seconds(), run.cpu.Seconds(), mib(run.maxRSS))
			res.runs = append(res.runs, run)
			got[f] = len(res.runs) - 1
		}
		ji, jok := got["json"]
		ai, aok := got["avro"]
		if jok && aok {
			j, a := res.runs[ji], res.runs[ai]
			res.ratios = append(res.ratios, a.rate()/j.rate())
			res.steadyRatios = append(res.steadyRatios, a.steadyRate()/j.steadyRate())
			if err := b.formatsCompare(ctx, j.table, a.table); err != nil {
				b.rep.failed(fmt.Sprintf("formats pair %d: tables differ", pair), err)
				failed = append(failed, fmt.Sprintf("pair %d tables", pair))
			} else {
				res.checked = append(res.checked, fmt.Sprintf("pair %d: same columns and types, same %d rows", pair, res.rows))
			}
		}
		for _, i := range got {
			b.forget(res.runs[i].table, res.runs[i].group)
		}
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("%d formats measurement(s) failed", len(failed))
	}
	return res, nil
}

// formatRun drains topic (format f) with one worker into a fresh table
// and checks it; the table and group are kept for the pair's comparison
// unless it fails.
func (b *bench) formatRun(ctx context.Context, f, topic string, recs *orders, regURL string) (run formatRun, err error) {
	s := b.s
	P := recs.parts
	id, group, table := b.fresh()
	run = formatRun{format: f, table: table, group: group}
	run.pointResult = pointResult{point: point{P, 1, min(16, P), 5000}, records: len(recs.recs)}
	defer func() {
		if err != nil {
			b.forget(table, group)
			run.table = ""
		}
	}()
	extra := append([]string{"POOL_MAX_CONNS=" + strconv.Itoa(run.pool), "BATCH_MAX_RECORDS=5000"}, b.o.env...)
	extra = append(extra, "SINK_MAPPING=columns", "SINK_MODE=upsert", "SINK_KEY_FORMAT="+f, "SINK_VALUE_FORMAT="+f)
	if f == "avro" {
		// The worker creates the table from the Avro schemas.
		extra = append(extra, "SCHEMA_REGISTRY_URL="+regURL)
	} else if _, err := s.db.Exec(ctx, formatsDDL(table)); err != nil {
		return run, fmt.Errorf("create %s: %w", table, err)
	}
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil {
		return run, fmt.Errorf("checkpoint: %w", err)
	}
	procs, err := b.startWorkers(1, topic, group, table, id, extra)
	if err != nil {
		return run, err
	}
	defer killAll(procs)
	if err := b.awaitDrain(ctx, procs, &run.pointResult, group, topic); err != nil {
		return run, err
	}
	if err := stopWorkers(procs, &run.pointResult); err != nil {
		return run, err
	}
	rows, sum := recs.expected()
	return run, sinkdb.Check(ctx, s.db, table, rows, sum)
}

// formatsCompare checks that the Avro run's table (created by the worker
// from the schemas) has the JSON table's columns and types, and the same
// rows: every column but kafka_topic equal.
func (b *bench) formatsCompare(ctx context.Context, jsonTable, avroTable string) error {
	cols := func(t string) ([]string, error) {
		rows, err := b.s.db.Query(ctx, `SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, pgx.Identifier{t}.Sanitize())
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
	jc, err := cols(jsonTable)
	if err != nil {
		return err
	}
	ac, err := cols(avroTable)
	if err != nil {
		return err
	}
	if !slices.Equal(jc, ac) {
		return fmt.Errorf("columns differ: json table (%v), avro table (%v)", jc, ac)
	}
	var differ int64
	cmp := `SELECT count(*) FROM %[1]s j FULL JOIN %[2]s a USING (id)
WHERE (j.name, j.amount, j.created, j.day, j.tags, j.note, j.kafka_partition, j.kafka_offset, j.kafka_timestamp)
IS DISTINCT FROM (a.name, a.amount, a.created, a.day, a.tags, a.note, a.kafka_partition, a.kafka_offset, a.kafka_timestamp)`
	if err := b.s.db.QueryRow(ctx, fmt.Sprintf(cmp, pgx.Identifier{jsonTable}.Sanitize(), pgx.Identifier{avroTable}.Sanitize())).Scan(&differ); err != nil {
		return err
	}
	if differ > 0 {
		return fmt.Errorf("%d rows differ between %s (json) and %s (avro)", differ, jsonTable, avroTable)
	}
	return nil
}

// forgetSubjects deletes the topics' registry subjects, best effort.
func (b *bench) forgetSubjects(reg *sr.Client, topics ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, t := range topics {
		for _, subj := range []string{t + "-key", t + "-value"} {
			if _, err := reg.DeleteSubject(ctx, subj, sr.SoftDelete); err != nil {
				continue // the JSON topic has none
			}
			if _, err := reg.DeleteSubject(ctx, subj, sr.HardDelete); err != nil {
				logf("cleanup: registry subject %s: %v", subj, err)
			}
		}
	}
}

// medianF is median for ratios (xs not empty).
func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

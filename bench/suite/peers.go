package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/bench/internal/broker"
	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// The peers scenario: the benchmark shape the peers publish (16
// partitions, 10,000,000 records of ~200 bytes, INSERT mode, one row per
// record) in Kafka Connect's JSON-with-schema envelope, drained from one
// topic of its own by sinkworker (its defaults, SINK_MODE=insert,
// connect-json key and value) and by Kafka Connect with the Debezium JDBC
// sink (shipped defaults, then tuned), each into a fresh table; and the
// same rows from memory by binary COPY, the database's limit for them
// (peers_limit.go).

// peersGoal is the bar: sinkworker drains the shape at least this
// many times as fast as the tuned Debezium JDBC sink.
const peersGoal = 10.0

// Redpanda's published run of this shape, on its hardware: records/s of
// Kafka Connect's JDBC sink and of Redpanda Connect. Printed for
// reference only.
const (
	peersRedpandaKafkaConnect = 181_818
	peersRedpandaConnect      = 130_952
)

// peersOptions are the scenario's flags.
type peersOptions struct {
	records  int  // -peers-records
	parts    int  // -peers-partitions
	debezium bool // -peers-debezium
}

func (p *peersOptions) flags(fs *flag.FlagSet) {
	fs.IntVar(&p.records, "peers-records", 10_000_000, "records of the peers scenario's topic (~200-byte payloads in Kafka Connect's JSON envelope)")
	fs.IntVar(&p.parts, "peers-partitions", 16, "partitions of the peers scenario's topic (Debezium tuned: tasks.max = this)")
	fs.BoolVar(&p.debezium, "peers-debezium", true, "run Kafka Connect + Debezium JDBC sink in the peers scenario (needs java and mvn); false: sinkworker only")
}

func (p *peersOptions) validate() error {
	var errs []error
	if p.records < 1 {
		errs = append(errs, errors.New("-peers-records must be at least 1"))
	}
	if p.parts < 1 {
		errs = append(errs, errors.New("-peers-partitions must be at least 1"))
	}
	if p.records >= 1 && p.parts > p.records {
		errs = append(errs, errors.New("-peers-partitions must not exceed -peers-records"))
	}
	return errors.Join(errs...)
}

// The records. Record i has key {id: i} and value {id: i, name, qty,
// amount, active, created, note}, whose payload is exactly
// peersPayloadSize bytes of JSON (note pads it); it goes to partition
// i % P, at offset i / P. Keys and values are rebuilt from i on demand.
const (
	peersPayloadSize = 200
	peersKeyPrefix   = `{"schema":{"type":"struct","name":"bench.peers.Key","optional":false,"fields":[` +
		`{"field":"id","type":"int64","optional":false}]},"payload":{"id":`
	peersValuePrefix = `{"schema":{"type":"struct","name":"bench.peers.Value","optional":false,"fields":[` +
		`{"field":"id","type":"int64","optional":false},` +
		`{"field":"name","type":"string","optional":false},` +
		`{"field":"qty","type":"int32","optional":false},` +
		`{"field":"amount","type":"double","optional":false},` +
		`{"field":"active","type":"boolean","optional":false},` +
		`{"field":"created","type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1},` +
		`{"field":"note","type":"string","optional":true}]},"payload":`
	peersText  = "the quick brown fox jumps over the lazy dog and pays for the parcel at the door "
	peersEpoch = 1_767_225_600_000 // 2026-01-01T00:00:00Z, Unix milliseconds: record i was created i ms later
)

// peersColumns are the value's fields as the Debezium run's table columns,
// of the types sink/decode/format gives the schema's fields.
var peersColumns = []struct{ name, typ string }{
	{"id", "bigint"}, {"name", "text"}, {"qty", "integer"}, {"amount", "double precision"},
	{"active", "boolean"}, {"created", "timestamptz"}, {"note", "text"},
}

// appendPeersPayload appends record i's payload, e.g.
// {"id":7,"name":"customer-7","qty":7,"amount":0.07,"active":false,"created":1767225600007,"note":"the quick ..."}.
// Every tenth record has no created (null).
func appendPeersPayload(b []byte, i int) []byte { return appendPeersFields(b, i, false) }

// appendPeersDecoded appends record i's value as sinkworker's connect-json
// reader gives it, the JSON its insert table's value column takes: the
// payload with created as RFC 3339 text (format.AppendTimestamp), e.g.
// "created":"2026-01-01T00:00:00.007Z".
func appendPeersDecoded(b []byte, i int) []byte { return appendPeersFields(b, i, true) }

// appendPeersKeyText appends record i's key as sinkworker's insert table
// stores a connect-json key (decode.Row.KeyText: the decoded key's JSON
// text), e.g. {"id":7}.
func appendPeersKeyText(b []byte, i int) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, '}')
}

// appendPeersFields appends record i's payload, or with decoded its
// decoded value; both have the same note, which pads the payload.
func appendPeersFields(b []byte, i int, decoded bool) []byte {
	start, longer := len(b), 0 // longer: how much longer the decoded created is than the payload's
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"name":"customer-`...)
	b = strconv.AppendInt(b, int64(i%1_000_000), 10)
	b = append(b, `","qty":`...)
	b = strconv.AppendInt(b, int64(i%1000), 10)
	b = append(b, `,"amount":`...)
	b = strconv.AppendFloat(b, float64(i%10_000_000)/100, 'f', -1, 64)
	b = append(b, `,"active":`...)
	b = strconv.AppendBool(b, i%3 == 0)
	b = append(b, `,"created":`...)
	if i%10 == 9 {
		b = append(b, "null"...)
	} else if ms := peersEpoch + int64(i); decoded {
		n := len(b)
		b = format.AppendTimestamp(b, time.UnixMilli(ms).UTC())
		var digits [20]byte
		longer = len(b) - n - len(strconv.AppendInt(digits[:0], ms, 10))
	} else {
		b = strconv.AppendInt(b, ms, 10)
	}
	b = append(b, `,"note":"`...)
	for j := len(b) - start - longer; j < peersPayloadSize-2; j++ {
		b = append(b, peersText[(i+j)%len(peersText)])
	}
	return append(b, `"}`...)
}

// peersKey is record i's key envelope.
func peersKey(i int) []byte {
	b := make([]byte, 0, len(peersKeyPrefix)+24)
	b = append(b, peersKeyPrefix...)
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, "}}"...)
}

// peersValue is record i's value envelope.
func peersValue(i int) []byte {
	b := make([]byte, 0, len(peersValuePrefix)+peersPayloadSize+8)
	b = append(b, peersValuePrefix...)
	b = appendPeersPayload(b, i)
	return append(b, '}')
}

// peersCount is how many of n records partition p of parts holds.
func peersCount(n, parts, p int) int64 {
	c := n / parts
	if p < n%parts {
		c++
	}
	return int64(c)
}

// peersExpected is what a table of every record holds: one row per
// record, their offsets (0..count-1 in each partition) summing to sum.
func peersExpected(n, parts int) (rows int, sum int64) {
	for p := range parts {
		c := peersCount(n, parts, p)
		sum += c * (c - 1) / 2
	}
	return n, sum
}

// peersDDL is the Debezium run's table: a typed column per value field,
// then the Kafka coordinates primary.key.mode=kafka writes, as its key.
func peersDDL(table string) string {
	var cols []string
	for _, c := range peersColumns {
		cols = append(cols, c.name+" "+c.typ)
	}
	return "CREATE TABLE " + pgx.Identifier{table}.Sanitize() + " (" + strings.Join(cols, ", ") +
		", __connect_topic text NOT NULL, __connect_partition integer NOT NULL, __connect_offset bigint NOT NULL" +
		", PRIMARY KEY (__connect_topic, __connect_partition, __connect_offset))"
}

// peersResult is the scenario's measurements.
type peersResult struct {
	records, parts                     int
	keyBytes, payloadBytes, valueBytes int // of record 0
	produce                            time.Duration
	debezium                           bool // the Debezium runs were asked for
	sinkSettings                       string
	sink                               *pointResult
	limitGen                           time.Duration   // building every limit row alone, one goroutine
	limits                             []peersLimitRun // per peersLimitConns, the finished ones
	dbz                                []dbzResult     // defaults, tuned; a failed run that wrote rows is kept, unfinished
}

// peers produces the scenario's topic and drains it with sinkworker,
// measures the limit of its rows, then drains the topic with Debezium
// (defaults, tuned); a failed run is in the report and the others go on.
func (b *bench) peers(ctx context.Context, topics *[]string) (*peersResult, error) {
	s, o := b.s, b.o.peers
	res := &peersResult{records: o.records, parts: o.parts, debezium: o.debezium,
		keyBytes: len(peersKey(0)), payloadBytes: len(appendPeersPayload(nil, 0)), valueBytes: len(peersValue(0))}
	topic := fmt.Sprintf("bench-suite-%s-peers-p%d", b.stamp, o.parts)
	*topics = append(*topics, topic, topic+".dlq")
	err := b.retry(ctx, "produce "+topic, func() error {
		s.dropTopics(topic)
		if err := broker.CreateTopic(ctx, s.adm, topic, int32(o.parts)); err != nil {
			return err
		}
		var err error
		res.produce, err = producePeers(ctx, s, topic, o.records, o.parts)
		if err == nil {
			logf("  produced %d records to %s (%d partitions) at %.0f records/s", o.records, topic, o.parts, rate(int64(o.records), res.produce))
		}
		return err
	}, nil)
	if err != nil {
		return res, err
	}
	var failed []string
	label := "peers: sinkworker"
	var run pointResult
	err = b.retry(ctx, label, func() error {
		var err error
		run, err = b.peersSink(ctx, topic, res)
		return err
	}, func(a int) { run.attempts = a })
	if err != nil {
		b.rep.failed(label, err)
		failed = append(failed, label)
	} else {
		logf("  %s: %.0f records/s, %.0f after start-up (first commit at %.1f s), %.1f s CPU, max RSS %.0f MiB, peak %d connections",
			label, run.rate(), run.steadyRate(), run.firstCommit.Seconds(), run.cpu.Seconds(), mib(run.maxRSS), run.peakConns)
		res.sink = &run
	}
	failed = append(failed, b.peersLimits(ctx, topic, res)...)
	if !o.debezium {
		return res, failure(failed)
	}
	dir, err := b.connectDir(ctx)
	if err != nil {
		return res, err
	}
	for _, tuned := range []bool{false, true} {
		label := map[bool]string{false: "peers: Debezium JDBC sink, defaults", true: "peers: Debezium JDBC sink, tuned"}[tuned]
		var d dbzResult
		err := b.retry(ctx, label, func() error {
			var err error
			d, err = b.runDebezium(ctx, dir, topic, b.peersTarget(), tuned)
			return err
		}, func(a int) { d.attempts = a })
		if err != nil {
			b.rep.failed(label, err)
			failed = append(failed, label)
			if d.rowsAtEnd > 0 {
				res.dbz = append(res.dbz, d)
			}
			continue
		}
		logf("  %s: %.0f records/s (%.0f after start-up), %.1f s CPU, max RSS %.0f MiB, peak %d connections",
			label, d.rate(), d.steadyRate(), d.cpu.Seconds(), mib(d.maxRSS), d.peakConns)
		res.dbz = append(res.dbz, d)
	}
	return res, failure(failed)
}

func failure(failed []string) error {
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%d measurement(s) failed: %s", len(failed), strings.Join(failed, "; "))
}

// producePeers writes records 0..n-1 to topic (parts partitions), record
// i to partition i % parts, from this goroutine, so that it lands at
// offset i / parts (the idempotent producer keeps a partition's order),
// and checks the end offsets. It returns how long producing took, from
// the first record handed over to the last acknowledgement.
func producePeers(ctx context.Context, s *services, topic string, n, parts int) (time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(100_000), kgo.RecordDeliveryTimeout(2*time.Minute))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil || firstErr.Load() != nil {
			break
		}
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: peersKey(i), Value: peersValue(i), Partition: int32(i % parts)}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("produce to %s: %w", topic, err)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, fmt.Errorf("produce to %s: %w", topic, *e)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	took := time.Since(start)
	ends, err := broker.EndOffsets(ctx, s.adm, topic)
	if err != nil {
		return 0, err
	}
	for p := range parts {
		if want := peersCount(n, parts, p); ends[int32(p)] != want {
			return 0, fmt.Errorf("%s: partition %d ends at %d, want %d (a retried produce after a broker restart duplicates)", topic, p, ends[int32(p)], want)
		}
	}
	return took, nil
}

// peersSink drains topic with one worker (its defaults, SINK_MODE=insert,
// connect-json key and value) into a fresh insert table, timed as the
// drain scenario does, and checks the table.
func (b *bench) peersSink(ctx context.Context, topic string, res *peersResult) (pointResult, error) {
	s := b.s
	r := pointResult{point: point{res.parts, 1, autoPool, 5000}, records: res.records} // POOL_MAX_CONNS: the default
	id, group, table := b.fresh()
	defer b.forget(table, group)
	if err := sinkdb.EnsureTable(ctx, s.db, topic, table, true); err != nil {
		return r, err
	}
	own := []string{"SINK_MODE=insert", "SINK_KEY_FORMAT=connect-json", "SINK_VALUE_FORMAT=connect-json"}
	res.sinkSettings = "defaults, " + strings.Join(own, ", ")
	if len(b.o.env) > 0 {
		res.sinkSettings += " (after -env " + strings.Join(b.o.env, " ") + ")"
	}
	if _, err := s.db.Exec(ctx, "CHECKPOINT"); err != nil {
		return r, fmt.Errorf("checkpoint: %w", err)
	}
	procs, err := b.startWorkers(1, topic, group, table, id, append(slices.Clone(b.o.env), own...))
	if err != nil {
		return r, err
	}
	defer killAll(procs)
	if err := b.awaitDrain(ctx, procs, &r, group, topic); err != nil {
		return r, err
	}
	if err := stopWorkers(procs, &r); err != nil {
		return r, err
	}
	rows, sum := peersExpected(res.records, res.parts)
	if err := sinkdb.Check(ctx, s.db, table, rows, sum); err != nil {
		return r, err
	}
	return r, peersPlaced(ctx, s, table, "(value->>'id')::bigint", "kafka_partition", "kafka_offset", res.parts)
}

// peersTarget is what a Debezium run of the scenario writes: plain
// INSERTs, the Kafka coordinates as primary key, into a table made up
// front (schema.evolution=none: the connector creates and alters nothing).
func (b *bench) peersTarget() dbzTarget {
	o := b.o.peers
	rows, sum := peersExpected(o.records, o.parts)
	return dbzTarget{
		parts: o.parts, records: o.records,
		write: []string{"insert.mode=insert", "primary.key.mode=kafka", "schema.evolution=none"},
		create: func(ctx context.Context, table string) error {
			_, err := b.s.db.Exec(ctx, peersDDL(table))
			return err
		},
		offset: "__connect_offset", wantRows: rows, wantSum: sum,
		check: func(ctx context.Context, table string) error {
			return peersPlaced(ctx, b.s, table, "id", "__connect_partition", "__connect_offset", o.parts)
		},
		// The shipped defaults are slow: allow 5,000 records/s.
		timeout: max(b.o.timeout, time.Duration(o.records/5000)*time.Second),
	}
}

// peersPlaced checks that every row of table holds the record its
// partition and offset columns say: id = offset * parts + partition.
func peersPlaced(ctx context.Context, s *services, table, id, part, off string, parts int) error {
	var wrong int64
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s IS DISTINCT FROM %s::bigint * $1 + %s",
		pgx.Identifier{table}.Sanitize(), id, off, part)
	if err := s.db.QueryRow(ctx, q, parts).Scan(&wrong); err != nil {
		return fmt.Errorf("check %s: %w", table, err)
	}
	if wrong > 0 {
		return fmt.Errorf("table %s: %d rows hold another record than their partition and offset say", table, wrong)
	}
	return nil
}

// ratio is sink / Debezium name (from process start, after both
// start-ups), false when either is missing.
func (p *peersResult) ratio(name string) (whole, steady float64, of dbzResult, ok bool) {
	for _, d := range p.dbz {
		if p.sink != nil && d.name == name && d.finished {
			return p.sink.rate() / d.rate(), p.sink.steadyRate() / d.steadyRate(), d, true
		}
	}
	return 0, 0, of, false
}

func (p *peersResult) markdown(w func(string, ...any)) {
	w("The peers' own benchmark shape: %d records on one topic of %d partitions (record i to partition i %% %d at offset i / %d), each in Kafka Connect's JSON-with-schema envelope (JsonConverter, schemas.enable=true): key struct {id int64} (%d bytes), value struct {id int64, name string, qty int32, amount double, active boolean, created optional int64 Timestamp (null in every tenth), note optional string} whose payload is %d bytes of JSON (%d with the envelope's schema). "+
		"Produced with franz-go (one idempotent client, linger 5 ms, snappy, up to 5 requests in flight) at %.0f records/s. INSERT mode, one row per record; each run drains the same topic into a fresh table.",
		p.records, p.parts, p.parts, p.parts, p.keyBytes, p.payloadBytes, p.valueBytes, rate(int64(p.records), p.produce))
	w("")
	w("- **sinkworker**: one worker, its defaults (POOL_MAX_CONNS auto, BATCH_MAX_RECORDS 5000, SINK_MAPPING=jsonb: the value as one jsonb column) and SINK_MODE=insert, SINK_KEY_FORMAT=SINK_VALUE_FORMAT=connect-json, into the insert table (primary key kafka_topic, kafka_partition, kafka_offset); records/s from process start until sink_offsets covers every record, after start-up from the first poll showing a commit.")
	w("- **Debezium**: Kafka Connect standalone (connect-runtime 4.3.1) + Debezium JDBC sink %s, JsonConverter with schemas.enable=true, insert.mode=insert, primary.key.mode=kafka, schema.evolution=none, into a table created up front with a typed column per value field and __connect_topic, __connect_partition, __connect_offset as primary key; JVM -Xmx1g. Shipped defaults, then tuned (tasks.max=%d, batch.size=5000, pool 1/2, consumer max.poll.records=5000). records/s from JVM start until the table holds every record (polled every 250 ms), after start-up from the first row.", debeziumVersion, p.parts)
	w("- **limit**: the rows the sinkworker run writes (its key text, its decoded value as jsonb, the topic, partition, offset, a timestamp), built from memory and written by binary COPY (pgx CopyFrom) into a fresh table of the same insert shape after a CHECKPOINT: batches of %d consecutive records of one partition, one COPY (one transaction) each, with %s connections, connection i writing the partitions p with p %% connections == i. No Kafka, no decoding, no offsets table: what this PostgreSQL takes of these rows at best, whatever the sink. records/s from the first COPY to the last commit; the fastest connection count is the limit. "+
		"Each connection builds a batch's rows from the record indexes into a buffer it reuses (10M rows held as Go values would take several GB), inside the timed loop: the CPU s column is this process's CPU in the run (building and COPY encoding), and the building alone is measured below.", peersLimitBatch, peersLimitConnsText(p.parts))
	w("- Every table is checked: one row per record, offsets summing to what the topic holds, and each row's id the one produced to its partition and offset.")
	w("")
	if !p.debezium {
		w("Debezium not run (-peers-debezium=false).")
		w("")
	}
	w("| run | settings | records/s | after start-up | start-up | peak conns | CPU s | CPU s / 1M records | max RSS MiB | attempts |")
	w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	perM := func(cpu time.Duration) float64 { return cpu.Seconds() / float64(p.records) * 1e6 }
	if r := p.sink; r != nil {
		w("| **sinkworker** | %s | **%.0f** | %.0f | %.2f s | %d | %.1f | %.1f | %.0f | %d |", p.sinkSettings, r.rate(), r.steadyRate(),
			r.firstCommit.Seconds(), r.peakConns, r.cpu.Seconds(), perM(r.cpu), mib(r.maxRSS), r.attempts)
	} else {
		w("| **sinkworker** | failed (see below) | | | | | | | | |")
	}
	for _, d := range p.dbz {
		if !d.finished {
			w("| Debezium %s | %s | not finished (%d rows) | | | %d | | | | %d |", d.name, d.settings, d.rowsAtEnd, d.peakConns, d.attempts)
			continue
		}
		w("| Debezium %s | %s | **%.0f** | %.0f | %.1f s | %d | %.1f | %.1f | %.0f | %d |", d.name, d.settings, d.rate(), d.steadyRate(),
			d.firstRow.Seconds(), d.peakConns, d.cpu.Seconds(), perM(d.cpu), mib(d.maxRSS), d.attempts)
	}
	p.limitMarkdown(w, perM)
	if p.debezium {
		w("%s", p.summary())
		w("")
	}
	w("For reference only (other hardware, another setup): Redpanda's published run of this shape measured Kafka Connect's JDBC sink at %s msg/s and Redpanda Connect at %s msg/s.",
		thousands(peersRedpandaKafkaConnect), thousands(peersRedpandaConnect))
	w("")
}

// summary is the scenario's line: sink / Debezium tuned against the goal,
// and sink / Debezium defaults.
func (p *peersResult) summary() string {
	line := fmt.Sprintf("**sink / Debezium tuned**, the peers' shape (%d records, %d partitions, insert, connect-json): ", p.records, p.parts)
	if !p.debezium {
		if p.sink == nil {
			return line + "no figure (Debezium not run, sinkworker failed)" + p.limitSummary()
		}
		return line + fmt.Sprintf("Debezium not run; sinkworker %.0f records/s (%.0f after start-up)", p.sink.rate(), p.sink.steadyRate()) + p.limitSummary()
	}
	if whole, steady, d, ok := p.ratio("tuned"); ok {
		line += fmt.Sprintf("**%.1f** from process start (%.0f / %.0f records/s), %.1f after both start-ups; goal >= %.0f: **%s**",
			whole, p.sink.rate(), d.rate(), steady, peersGoal, map[bool]string{true: "met", false: "not met"}[whole >= peersGoal])
	} else {
		line += "no figure (a run failed or did not finish)"
	}
	if whole, steady, d, ok := p.ratio("defaults"); ok {
		line += fmt.Sprintf("; **sink / Debezium defaults**: **%.1f** (%.0f / %.0f records/s), %.1f after both start-ups", whole, p.sink.rate(), d.rate(), steady)
	}
	return line + p.limitSummary()
}

// thousands writes n with commas: 181818 -> "181,818".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

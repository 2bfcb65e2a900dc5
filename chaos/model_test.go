package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// The model is built from the topic itself, read back after the run: a
// produce whose acknowledgement was lost may still be in the log, and the
// sink must apply exactly what the log holds. The acknowledged records are
// checked to be in the log, at their acknowledged offsets.

// value is what every produced value holds: its key and a sequence number
// unique to the produce call.
type value struct {
	K   string `json:"k"`
	Seq int64  `json:"seq"`
	Pad string `json:"pad"`
}

// ack is one acknowledged record.
type ack struct {
	p   int32
	o   int64
	key string
	seq int64 // -1: a tombstone
}

// producer writes keyed records, ~5% tombstones, with an idempotent acks=all
// client that retries through broker restarts without a deadline.
type producer struct {
	t    *testing.T
	cl   *kgo.Client
	keys int
	rng  *rand.Rand

	sent     atomic.Int64
	mu       sync.Mutex
	acked    []ack
	failed   int
	firstErr error
}

func newProducer(t *testing.T, topic string, keys int, seed uint64) *producer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, with idempotence, said out loud
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1_000_000),
		kgo.RecordDeliveryTimeout(0), kgo.UnknownTopicRetries(-1))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return &producer{t: t, cl: cl, keys: keys, rng: rand.New(rand.NewPCG(seed, 2))}
}

// run produces at rate records per second until stop is closed and at least
// target records were sent, then waits for every outstanding produce.
func (pr *producer) run(stop <-chan struct{}, rate float64, target int) {
	start := time.Now()
	pad := strings.Repeat("x", 64)
	for {
		select {
		case <-stop:
			if pr.sent.Load() >= int64(target) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if err := pr.cl.Flush(ctx); err != nil {
					pr.t.Errorf("producer flush: %v", err)
				}
				return
			}
		default:
		}
		due := int64(rate * time.Since(start).Seconds())
		if due <= pr.sent.Load() {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		for pr.sent.Load() < due {
			seq := pr.sent.Add(1) - 1
			key := fmt.Sprintf("k%06d", pr.rng.IntN(pr.keys))
			rec := &kgo.Record{Key: []byte(key)}
			if pr.rng.IntN(100) >= 5 {
				rec.Value, _ = json.Marshal(value{K: key, Seq: seq, Pad: pad})
			}
			pr.cl.Produce(context.Background(), rec, pr.done)
		}
	}
}

func (pr *producer) done(r *kgo.Record, err error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if err != nil {
		pr.failed++
		if pr.firstErr == nil {
			pr.firstErr = err
		}
		return
	}
	a := ack{p: r.Partition, o: r.Offset, key: string(r.Key), seq: -1}
	if r.Value != nil {
		var v value
		_ = json.Unmarshal(r.Value, &v)
		a.seq = v.Seq
	}
	pr.acked = append(pr.acked, a)
}

func (pr *producer) ackedCount() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.acked)
}

func (pr *producer) failedCount() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.failed
}

// checkAcked requires every acknowledged record in the log, unchanged.
func (pr *producer) checkAcked(t *testing.T, log *topicLog) {
	t.Helper()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.failed > 0 {
		t.Logf("%d produces failed for good (first: %v); the log decides whether they landed", pr.failed, pr.firstErr)
	}
	var bad []string
	for _, a := range pr.acked {
		recs := log.parts[a.p]
		if a.o >= int64(len(recs)) || recs[a.o].key != a.key || recs[a.o].seq != a.seq {
			bad = append(bad, fmt.Sprintf("p%d@%d", a.p, a.o))
		}
	}
	assert.Empty(t, first(bad, 20), "%d acknowledged records not in the log as acknowledged", len(bad))
}

// logRec is one record read back from the topic.
type logRec struct {
	key string
	seq int64 // -1: a tombstone
	ts  time.Time
}

// topicLog is the topic's content: parts[p][o] is the record at offset o.
type topicLog struct {
	parts map[int32][]logRec
}

func (l *topicLog) count() int {
	n := 0
	for _, recs := range l.parts {
		n += len(recs)
	}
	return n
}

// readLog reads every partition from the start to ends with a plain
// consumer (no group).
func readLog(t *testing.T, topic string, ends []int64) *topicLog {
	t.Helper()
	start := map[int32]kgo.Offset{}
	for p := range ends {
		start[int32(p)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.FetchMaxBytes(64<<20))
	require.NoError(t, err)
	defer cl.Close()
	log := &topicLog{parts: map[int32][]logRec{}}
	left := 0
	for p, end := range ends {
		log.parts[int32(p)] = make([]logRec, 0, end)
		if end > 0 {
			left++
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	for left > 0 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading the topic back")
		fs.EachError(func(_ string, p int32, err error) { t.Logf("read-back p%d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			recs := log.parts[r.Partition]
			if r.Offset != int64(len(recs)) || r.Offset >= ends[r.Partition] {
				if r.Offset >= ends[r.Partition] {
					return // beyond what the drain waited for: nothing is produced now
				}
				t.Fatalf("read-back p%d: offset %d after %d records (a gap in the log?)", r.Partition, r.Offset, len(recs))
			}
			lr := logRec{key: string(r.Key), seq: -1, ts: r.Timestamp}
			if r.Value != nil {
				var v value
				require.NoError(t, json.Unmarshal(r.Value, &v), "p%d@%d", r.Partition, r.Offset)
				lr.seq = v.Seq
			}
			log.parts[r.Partition] = append(recs, lr)
			if int64(len(log.parts[r.Partition])) == ends[r.Partition] {
				left--
			}
		})
	}
	return log
}

type coord struct {
	p int32
	o int64
}

func (c coord) String() string { return fmt.Sprintf("p%d@%d", c.p, c.o) }

// checkInsert: exactly one row per record in the log, with its key and
// value (sequence number); lists missing and extra (partition, offset).
func (r *run) checkInsert(log *topicLog) (missing, extra int) {
	t := r.t
	rows, err := r.pool.Query(t.Context(), `SELECT kafka_partition, kafka_offset, key, coalesce((value->>'seq')::int8, -1)
FROM `+pgx.Identifier{r.table}.Sanitize()+` WHERE kafka_topic = $1`, r.topic)
	require.NoError(t, err)
	seen := map[coord]bool{}
	var extras, wrong []string
	var (
		c   coord
		key string
		seq int64
	)
	_, err = pgx.ForEachRow(rows, []any{&c.p, &c.o, &key, &seq}, func() error {
		recs := log.parts[c.p]
		switch {
		case c.o < 0 || c.o >= int64(len(recs)):
			extras = append(extras, c.String())
		case seen[c]:
			extras = append(extras, c.String()+" (again)")
		case recs[c.o].key != key || recs[c.o].seq != seq:
			wrong = append(wrong, fmt.Sprintf("%v: row has key %s seq %d, log has key %s seq %d", c, key, seq, recs[c.o].key, recs[c.o].seq))
		}
		seen[c] = true
		return nil
	})
	require.NoError(t, err)
	var miss []string
	for p := range int32(partitions) {
		for o := range log.parts[p] {
			if !seen[coord{p, int64(o)}] {
				miss = append(miss, coord{p, int64(o)}.String())
			}
		}
	}
	assert.Empty(t, first(miss, 20), "%d records of the log have no row (missing)", len(miss))
	assert.Empty(t, first(extras, 20), "%d rows that are not a record of the log, or a second row of one (extra)", len(extras))
	assert.Empty(t, first(wrong, 20), "%d rows whose key or value is not their record's", len(wrong))
	return len(miss), len(extras) + len(wrong)
}

// checkUpsert: the table is the last value per key by offset, tombstoned
// keys absent.
func (r *run) checkUpsert(log *topicLog) (missing, extra int) {
	t := r.t
	type last struct {
		c   coord
		seq int64
	}
	model := map[string]last{}
	for p, recs := range log.parts {
		for o, rec := range recs {
			if prev, ok := model[rec.key]; ok && prev.c.p != p {
				t.Fatalf("key %s in partitions %d and %d: the model assumes one partition per key", rec.key, prev.c.p, p)
			}
			model[rec.key] = last{coord{p, int64(o)}, rec.seq}
		}
	}
	rows, err := r.pool.Query(t.Context(), `SELECT key, kafka_partition, kafka_offset, coalesce((value->>'seq')::int8, -1)
FROM `+pgx.Identifier{r.table}.Sanitize())
	require.NoError(t, err)
	var extras, stale []string
	seen := map[string]bool{}
	var (
		key string
		c   coord
		seq int64
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &c.p, &c.o, &seq}, func() error {
		seen[key] = true
		m, ok := model[key]
		switch {
		case !ok:
			extras = append(extras, key+" (never produced)")
		case m.seq < 0:
			extras = append(extras, fmt.Sprintf("%s (row from %v, deleted by the tombstone at %v)", key, c, m.c))
		case m.c != c || m.seq != seq:
			stale = append(stale, fmt.Sprintf("%s: row from %v seq %d, last record %v seq %d", key, c, seq, m.c, m.seq))
		}
		return nil
	})
	require.NoError(t, err)
	var miss []string
	for key, m := range model {
		if m.seq >= 0 && !seen[key] {
			miss = append(miss, fmt.Sprintf("%s (last record %v)", key, m.c))
		}
	}
	slices.Sort(miss)
	assert.Empty(t, first(miss, 20), "%d live keys of the model have no row (missing)", len(miss))
	assert.Empty(t, first(extras, 20), "%d rows for keys the model does not hold (extra)", len(extras))
	assert.Empty(t, first(stale, 20), "%d rows that do not hold their key's last record (stale)", len(stale))
	return len(miss), len(extras) + len(stale)
}

// dlqRecords counts the records in the run's dead-letter topic.
func (r *run) dlqRecords() int64 {
	var n int64
	err := retry(time.Minute, func(ctx context.Context) error {
		n = 0
		ends, err := r.adm.ListEndOffsets(ctx, r.topic+".dlq")
		if err != nil {
			return err
		}
		var lerr error
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				lerr = o.Err
			}
			n += o.Offset
		})
		return lerr
	})
	assert.NoError(r.t, err, "end offsets of %s.dlq", r.topic)
	return n
}

// audit runs `sinkworker audit -json` and requires exit status 0 and a
// consistent verdict.
func (r *run) audit() {
	t := r.t
	cmd := exec.Command(binary, "audit", "-json")
	cmd.Env = testenv.ProcessEnv(map[string]string{"KAFKA_BROKERS": strings.Join(brokers, ","), "DATABASE_URL": dbURL,
		"KAFKA_TOPICS": r.topic, "KAFKA_GROUP": r.group, "SINK_TABLE_MAP": r.topic + "=" + r.table})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Errorf("sinkworker audit -json: exit status %d\n%s%s", exit.ExitCode(), stdout.String(), stderr.String())
		return
	}
	require.NoError(t, err, "sinkworker audit -json")
	var verdict struct {
		Consistent bool              `json:"consistent"`
		Partitions []json.RawMessage `json:"partitions"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &verdict), "audit output:\n%s", stdout.String())
	assert.True(t, verdict.Consistent, "audit verdict:\n%s", stdout.String())
	assert.Len(t, verdict.Partitions, partitions, "audit rows")
	t.Logf("sinkworker audit -json: exit 0, consistent=%v, %d partitions", verdict.Consistent, len(verdict.Partitions))
}

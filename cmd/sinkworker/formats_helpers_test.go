package main

import (
	"context"
	bin "encoding/binary"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/dlq"
)

// Helpers of the format tests (formats_test.go): the real schema registry
// that `scripts/services up` starts (SCHEMA_REGISTRY_URL, its Confluent
// API), Confluent's wire format written by hand (magic byte, schema id,
// Protobuf message indexes, then an Avro, Protobuf or JSON body), and
// readers of the typed tables the worker creates.

// registryURL is SCHEMA_REGISTRY_URL; a test that needs the registry fails
// without it, never skips.
func registryURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("SCHEMA_REGISTRY_URL")
	if u == "" {
		t.Fatalf("SCHEMA_REGISTRY_URL must be set: %s", testenv.Hint)
	}
	return u
}

// register registers schema text of type typ under subject (the test's
// own) and returns its id, which the in-memory registry hands out: never
// assume a value.
func register(t *testing.T, subject string, typ sr.SchemaType, text string) int {
	t.Helper()
	cl, err := sr.NewClient(sr.URLs(registryURL(t)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := cl.CreateSchema(ctx, subject, sr.Schema{Schema: text, Type: typ})
	require.NoError(t, err, "register %s", subject)
	return s.ID
}

// frame is Confluent's wire format: magic byte 0, the schema id (4 bytes,
// big-endian), then body.
func frame(id int, body []byte) []byte {
	out := make([]byte, 5, 5+len(body))
	bin.BigEndian.PutUint32(out[1:], uint32(id))
	return append(out, body...)
}

// pbFrame is frame for Protobuf: the message indexes (zig-zag varints, a
// count then the path; [0] is the single byte 0) before the message.
func pbFrame(id int, indexes []int64, msg []byte) []byte {
	var b []byte
	if len(indexes) == 1 && indexes[0] == 0 {
		b = append(b, 0)
	} else {
		b = bin.AppendVarint(b, int64(len(indexes)))
		for _, i := range indexes {
			b = bin.AppendVarint(b, i)
		}
	}
	return frame(id, append(b, msg...))
}

// Avro's binary encoding, as much as the tests write.

func avLong(b []byte, v int64) []byte  { return bin.AppendVarint(b, v) }
func avStr(b []byte, s string) []byte  { return append(avLong(b, int64(len(s))), s...) }
func avBytes(b, v []byte) []byte       { return append(avLong(b, int64(len(v))), v...) }
func avNull(b []byte) []byte           { return avLong(b, 0) } // union [null, X] branch 0
func avSome(b []byte, s string) []byte { return avStr(avLong(b, 1), s) }

// avStrings is an array of strings: one block, then the end marker.
func avStrings(b []byte, ss ...string) []byte {
	if len(ss) > 0 {
		b = avLong(b, int64(len(ss)))
		for _, s := range ss {
			b = avStr(b, s)
		}
	}
	return avLong(b, 0)
}

// avDecimal is a bytes decimal: the unscaled value as a two's-complement
// big-endian integer, in the fewest bytes.
func avDecimal(b []byte, unscaled int64) []byte {
	return avBytes(b, twosComplement(big.NewInt(unscaled)))
}

func twosComplement(v *big.Int) []byte {
	if v.Sign() >= 0 {
		raw := v.Bytes()
		if len(raw) == 0 || raw[0]&0x80 != 0 {
			raw = append([]byte{0}, raw...)
		}
		return raw
	}
	n := (v.BitLen() + 8) / 8 // room for the sign bit
	mod := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
	raw := new(big.Int).Add(mod, v).Bytes()
	for len(raw) < n {
		raw = append([]byte{0xff}, raw...)
	}
	return raw
}

// Protobuf's wire format, as much as the tests write.

func pbVarint(b []byte, field protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, field, protowire.VarintType), v)
}

func pbLen(b []byte, field protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, field, protowire.BytesType), v)
}

// pbTimestamp is a google.protobuf.Timestamp message.
func pbTimestamp(ts time.Time) []byte {
	b := pbVarint(nil, 1, uint64(ts.Unix()))
	if ts.Nanosecond() != 0 {
		b = pbVarint(b, 2, uint64(ts.Nanosecond()))
	}
	return b
}

// deadLetter is one record of a dead-letter topic, as the tests look at it.
type deadLetter struct {
	Class, Message string
	Key, Value     []byte
	Offset         string // the source offset header
}

// deadLetters reads the dead-letter topic of topic.
func deadLetters(t *testing.T, topic string) []deadLetter {
	t.Helper()
	var out []deadLetter
	for _, r := range readTopic(t, topic+".dlq") {
		class, _ := header(r, dlq.HeaderClass)
		msg, _ := header(r, dlq.HeaderMessage)
		ofs, _ := header(r, dlq.HeaderOffset)
		out = append(out, deadLetter{Class: class, Message: msg, Key: r.Key, Value: r.Value, Offset: ofs})
	}
	return out
}

// formatEnv is a worker's settings for one topic into one table through
// the registry, plus extra.
func formatEnv(t *testing.T, topic, table, group string, extra map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{
		"KAFKA_TOPICS": topic, "KAFKA_GROUP": group, "SINK_TABLE_MAP": topic + "=" + table,
		"SCHEMA_REGISTRY_URL": registryURL(t),
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// textRows runs query and returns each row's columns as text joined by
// " | ", NULL for a null; the query casts what it selects to text.
func textRows(t *testing.T, pool *pgxpool.Pool, query string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				parts[i] = "NULL"
			case string:
				parts[i] = v
			default:
				t.Fatalf("column %d of %q is %T, not text: cast it", i, query, v)
			}
		}
		out = append(out, strings.Join(parts, " | "))
	}
	require.NoError(t, rows.Err())
	return out
}

// columnTypes is the table's columns in order, each "name type" with the
// type as format_type prints it ("numeric(10,2)", "text[]") and " not
// null" when so.
func columnTypes(t *testing.T, pool *pgxpool.Pool, table string) []string {
	t.Helper()
	return textRows(t, pool, `SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
	CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
		pgx.Identifier{table}.Sanitize())
}

// primaryKey is the table's primary key columns, in order.
func primaryKey(t *testing.T, pool *pgxpool.Pool, table string) []string {
	t.Helper()
	return textRows(t, pool, `SELECT a.attname::text FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n`, pgx.Identifier{table}.Sanitize())
}

// produceRaw writes records (keys and values as given) in order and waits
// for every ack.
func produceRaw(t *testing.T, topic string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
}

// switchProxy forwards TCP connections to target while on; switched off it
// closes every forwarded connection and every new one at once, so a
// registry behind it is unreachable (a refused connection, fast) until it
// is switched on again.
type switchProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	off   bool
	conns []net.Conn
}

// newSwitchProxy listens on a free port of 127.0.0.1 and forwards to
// target until the test ends.
func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &switchProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	wg.Go(func() { p.serve(&wg) })
	t.Cleanup(func() {
		ln.Close()
		p.set(true)
		wg.Wait()
	})
	return p
}

func (p *switchProxy) serve(wg *sync.WaitGroup) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		off := p.off
		p.mu.Unlock()
		if off {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		wg.Go(func() { copyClose(u, c) })
		wg.Go(func() { copyClose(c, u) })
	}
}

func copyClose(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// set switches the proxy off (closing every forwarded connection) or on.
func (p *switchProxy) set(off bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = off
	if off {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// via is the registry URL u with its host replaced by the proxy's.
func (p *switchProxy) via(t *testing.T, u string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	parsed.Host = p.ln.Addr().String()
	return parsed.String()
}

// retype is a topic whose value schema's v2 turns v1's bigint field qty
// into a string, its table dropped and its own group; the type-change
// tests build their records from it.
type retype struct {
	pool                *pgxpool.Pool
	topic, table, group string
	keyID, v1, v2       int
}

func newRetype(t *testing.T, name string) retype {
	t.Helper()
	pool := db(t)
	r := retype{pool: pool, topic: ownTopic(t, 1), table: uniq(name), group: ownGroup(t, pool)}
	dropTable(t, pool, r.table)
	r.keyID = register(t, r.topic+"-key", sr.TypeAvro, paymentAvroKey)
	r.v1 = register(t, r.topic+"-v1", sr.TypeAvro,
		`{"type":"record","name":"Q","fields":[{"name":"id","type":"long"},{"name":"qty","type":"long"}]}`)
	r.v2 = register(t, r.topic+"-v2", sr.TypeAvro,
		`{"type":"record","name":"Q","fields":[{"name":"id","type":"long"},{"name":"qty","type":"string"}]}`)
	return r
}

// v1Rec and v2Rec are records of id i in v1 (a number) and v2 (text).
func (r retype) v1Rec(i int, qty int64) rec {
	return rec{key: string(frame(r.keyID, avroKey(int64(i)))), value: frame(r.v1, avLong(avLong(nil, int64(i)), qty))}
}

func (r retype) v2Rec(i int, qty string) rec {
	return rec{key: string(frame(r.keyID, avroKey(int64(i)))), value: frame(r.v2, avStr(avLong(nil, int64(i)), qty))}
}

// firstV1 are v1 records of ids 0 to n-1, qty 10 times the id, and the
// rows they make ("id | qty").
func (r retype) firstV1(n int) (recs []rec, rows []string) {
	for i := range n {
		recs = append(recs, r.v1Rec(i, int64(i*10)))
		rows = append(rows, fmt.Sprintf("%d | %d", i, i*10))
	}
	return recs, rows
}

// rows are the table's rows as "id | qty", by id.
func (r retype) rows(t *testing.T) []string {
	t.Helper()
	return textRows(t, r.pool, `SELECT id::text, qty::text FROM `+pgx.Identifier{r.table}.Sanitize()+` t ORDER BY t.id`)
}

package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/decode/format"
)

func TestPeersRecord(t *testing.T) {
	dec := format.NewConnectJSON()
	for _, tc := range []struct {
		name    string
		i       int
		created any // what the decoded "created" holds
	}{
		{name: "first", i: 0, created: "2026-01-01T00:00:00Z"},
		{name: "no created", i: 9, created: nil},
		{name: "middle", i: 1_234_567, created: time.UnixMilli(peersEpoch + 1_234_567).UTC().Format(time.RFC3339Nano)},
		{name: "last of the full size", i: 9_999_999, created: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := appendPeersPayload(nil, tc.i)
			assert.Len(t, payload, peersPayloadSize)
			require.True(t, json.Valid(payload), "%s", payload)
			key, value := peersKey(tc.i), peersValue(tc.i)
			require.True(t, json.Valid(key), "%s", key)
			require.True(t, json.Valid(value), "%s", value)
			assert.Contains(t, string(value), string(payload))

			got, shape, err := dec.AppendJSON(nil, value)
			require.NoError(t, err, "connect-json reads the value")
			assert.Equal(t, string(got), string(appendPeersDecoded(nil, tc.i)), "the limit's value is the decoded one")
			var v map[string]any
			require.NoError(t, json.Unmarshal(got, &v), "%s", got)
			assert.Equal(t, float64(tc.i), v["id"])
			assert.Equal(t, "customer-"+strconv.Itoa(tc.i%1_000_000), v["name"])
			assert.Equal(t, float64(tc.i%1000), v["qty"])
			assert.InDelta(t, float64(tc.i%10_000_000)/100, v["amount"], 1e-9)
			assert.Equal(t, tc.i%3 == 0, v["active"])
			if tc.created == nil {
				assert.Nil(t, v["created"])
			} else {
				ts, err := time.Parse(time.RFC3339Nano, v["created"].(string))
				require.NoError(t, err)
				want, _ := time.Parse(time.RFC3339Nano, tc.created.(string))
				assert.True(t, want.Equal(ts), "created %s, want %s", ts, want)
			}
			note, _ := v["note"].(string)
			assert.Greater(t, len(note), 80)
			assert.NotContains(t, note, `"`)

			// The Debezium run's table has a column of the reader's type per field.
			require.NotNil(t, shape)
			require.Len(t, shape.Columns, len(peersColumns))
			for j, c := range peersColumns {
				assert.Equal(t, c.name, shape.Columns[j].Name)
				assert.Equal(t, c.typ, shape.Columns[j].Type, "column %s", c.name)
			}

			gotKey, _, err := dec.AppendJSON(nil, key)
			require.NoError(t, err, "connect-json reads the key")
			assert.JSONEq(t, `{"id":`+strconv.Itoa(tc.i)+`}`, string(gotKey))
			assert.Equal(t, string(gotKey), string(appendPeersKeyText(nil, tc.i)))
		})
	}
}

// The limit's rows are what sinkworker's insert table gets of the records:
// its key text and value as the connect-json reader gives them.
func TestPeersLimitRows(t *testing.T) {
	cfg := decode.Config{Mode: decode.ModeInsert, Mapping: decode.MappingJSONB, MaxRecordBytes: 1 << 20,
		KeyFormat: decode.FormatConnectJSON, ValueFormat: decode.FormatConnectJSON}
	const n, parts = 103, 4
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: peersKey(i), Value: peersValue(i), Partition: int32(i % parts), Offset: int64(i / parts)})
	}
	decoded, rejected, err := cfg.Decode(t.Context(), recs)
	require.NoError(t, err)
	require.Empty(t, rejected)
	require.Len(t, decoded, n)

	rows := newPeersRows("topic-x", parts, 10)
	seen := 0
	var batches [][3]int
	for c := range 2 {
		err := peersLimitEach(n, parts, 2, c, 10, func(p int, from int64, cnt int) error {
			batches = append(batches, [3]int{p, int(from), cnt})
			rows.fill(p, from, cnt)
			for j := range cnt {
				row, err := rows.at(j)
				require.NoError(t, err)
				i := (int(from)+j)*parts + p
				want := decoded[i]
				assert.Equal(t, "topic-x", row[0])
				assert.Equal(t, want.Record.Partition, row[1])
				assert.Equal(t, want.Record.Offset, row[2])
				assert.Equal(t, string(want.KeyText), string(row[3].([]byte)), "key of record %d", i)
				assert.Equal(t, string(want.Value), string(row[4].([]byte)), "value of record %d", i)
				assert.Equal(t, time.UnixMilli(peersEpoch+int64(i)), row[5])
				seen++
			}
			return nil
		})
		require.NoError(t, err)
	}
	assert.Equal(t, n, seen, "every record once")
	// Partitions 0 and 2 go to connection 0, 1 and 3 to 1, a batch of each in turn;
	// 103 records: partitions 0-2 hold 26, partition 3 holds 25.
	assert.Equal(t, [][3]int{{0, 0, 10}, {2, 0, 10}, {0, 10, 10}, {2, 10, 10}, {0, 20, 6}, {2, 20, 6},
		{1, 0, 10}, {3, 0, 10}, {1, 10, 10}, {3, 10, 10}, {1, 20, 6}, {3, 20, 5}}, batches)
}

func TestPeersLimitConns(t *testing.T) {
	assert.Equal(t, []int{16, 2}, peersLimitConns(16))
	assert.Equal(t, []int{2}, peersLimitConns(2))
	assert.Equal(t, []int{1}, peersLimitConns(1))
	assert.Equal(t, "16 and 2", peersLimitConnsText(16))
}

func TestPeersExpected(t *testing.T) {
	for _, tc := range []struct {
		name         string
		n, parts     int
		wantSum      int64
		wantPerParts []int64
	}{
		{name: "uneven", n: 10, parts: 4, wantSum: 3 + 3 + 1 + 1, wantPerParts: []int64{3, 3, 2, 2}},
		{name: "one partition", n: 5, parts: 1, wantSum: 0 + 1 + 2 + 3 + 4, wantPerParts: []int64{5}},
		{name: "one record each", n: 3, parts: 3, wantSum: 0, wantPerParts: []int64{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, sum := peersExpected(tc.n, tc.parts)
			assert.Equal(t, tc.n, rows)
			assert.Equal(t, tc.wantSum, sum)
			for p, want := range tc.wantPerParts {
				assert.Equal(t, want, peersCount(tc.n, tc.parts, p), "partition %d", p)
			}
		})
	}
}

func TestPeersOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       peersOptions
		wantErr []string
	}{
		{name: "defaults", o: peersOptions{records: 10_000_000, parts: 16, debezium: true}},
		{name: "zero", o: peersOptions{}, wantErr: []string{"-peers-records", "-peers-partitions must be at least 1"}},
		{name: "more partitions than records", o: peersOptions{records: 3, parts: 4}, wantErr: []string{"must not exceed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.validate()
			if len(tc.wantErr) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestPeersReport(t *testing.T) {
	sink := &pointResult{records: 1_000_000, drain: 10 * time.Second, firstCommit: time.Second, firstCount: 50_000}
	p := &peersResult{records: 1_000_000, parts: 16, debezium: true, sink: sink, dbz: []dbzResult{
		{name: "defaults", records: 1_000_000, total: 200 * time.Second, firstRow: 10 * time.Second, finished: true},
		{name: "tuned", records: 1_000_000, total: 80 * time.Second, firstRow: 15 * time.Second, finished: true},
	}}
	s := p.summary()
	assert.Contains(t, s, "**8.0** from process start (100000 / 12500 records/s)")
	assert.Contains(t, s, "goal >= 10: **not met**")
	assert.Contains(t, s, "**sink / Debezium defaults**: **20.0**")
	var b strings.Builder
	p.markdown(func(f string, a ...any) { b.WriteString(strings.TrimSpace(fmt.Sprintf(f, a...)) + "\n") })
	assert.Contains(t, b.String(), "181,818 msg/s")
	assert.Contains(t, b.String(), "130,952 msg/s")
	assert.Contains(t, b.String(), "| Debezium tuned |")
	assert.NotContains(t, b.String(), "| limit", "no limit rows without a limit run")

	// The limit: 2 connections is the faster, so it is the limit.
	p.limitGen = 2 * time.Second
	p.limits = []peersLimitRun{{conns: 16, time: 5 * time.Second, attempts: 1}, {conns: 2, time: 4 * time.Second, clientCPU: 3 * time.Second, attempts: 1}}
	s = p.summary()
	assert.Contains(t, s, "**sink / limit**: **0.40** from process start (100000 / 250000 records/s, limit at 2 connections)")
	assert.Contains(t, s, "**limit / Debezium tuned**: **20.0** (250000 / 12500 records/s)")
	b.Reset()
	p.markdown(func(f string, a ...any) { b.WriteString(strings.TrimSpace(fmt.Sprintf(f, a...)) + "\n") })
	assert.Contains(t, b.String(), "| limit, 16 connections | binary COPY from memory, batches of 5000, one transaction each; CPU s: this process | 200000 | 200000 |")
	assert.Contains(t, b.String(), "| **limit**, 2 connections | binary COPY from memory, batches of 5000, one transaction each; CPU s: this process | **250000** | **250000** | none | 2 | 3.0 | 3.0 |")
	assert.Contains(t, b.String(), "takes 2.00 s for the 1000000 records (500000 records/s), 50% of the limit run's 4.0 s")
	table := b.String()[strings.Index(b.String(), "| run |"):]
	table = table[:strings.Index(table, "\n\n")]
	assert.Contains(t, table, "| **limit**, 2 connections", "the limit rows are in the table")

	p.dbz = p.dbz[:1]
	assert.Contains(t, p.summary(), "no figure")
	p.debezium, p.dbz = false, nil
	assert.Contains(t, p.summary(), "Debezium not run; sinkworker 100000 records/s")
	assert.Contains(t, p.summary(), "**sink / limit**: **0.40**")
	assert.NotContains(t, p.summary(), "limit / Debezium")
}

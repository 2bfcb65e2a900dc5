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
		})
	}
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

	p.dbz = p.dbz[:1]
	assert.Contains(t, p.summary(), "no figure")
	p.debezium, p.dbz = false, nil
	assert.Contains(t, p.summary(), "Debezium not run; sinkworker 100000 records/s")
}

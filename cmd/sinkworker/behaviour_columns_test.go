package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestColumnsMapping: SINK_MAPPING=columns in upsert mode, against tables
// the test creates. A composite primary key is taken from a record key
// that is a JSON object; a one-column key from a plain key or a JSON
// string literal (unquoted); kafka_* columns are filled from the record;
// a column no record carries keeps its default; fields no column takes
// are counted as unknown_fields; a column added while the worker runs is
// written once the worker reads the catalog again (at most every 5 s).
func TestColumnsMapping(t *testing.T) {
	t.Parallel()
	pool := db(t)
	topicC, topicS, group := ownTopic(t, 1), ownTopic(t, 1), ownGroup(t, pool)
	tableC, tableS := uniq("cols"), uniq("cols")
	dropTable(t, pool, tableC)
	dropTable(t, pool, tableS)
	c, s := pgx.Identifier{tableC}.Sanitize(), pgx.Identifier{tableS}.Sanitize()
	adminExec(t, pool,
		`CREATE TABLE `+c+` (tenant text, id int, name text, n int, status text NOT NULL DEFAULT 'new',
	kafka_topic text, kafka_partition int, kafka_offset bigint, kafka_timestamp timestamptz, PRIMARY KEY (tenant, id))`,
		`CREATE TABLE `+s+` (id text PRIMARY KEY, name text, status text NOT NULL DEFAULT 'new')`)

	produce(t, topicC, []rec{
		{key: `{"tenant":"a","id":1}`, value: []byte(`{"name":"first","n":1}`)},
		{key: `{"tenant":"a","id":2}`, value: []byte(`{"name":"x","n":2,"extra":true}`)},
		{key: `{"tenant":"b","id":1}`, value: []byte(`{"name":"y","n":3,"extra":1,"more":[2]}`)},
		{key: `{"tenant":"a","id":1}`, value: []byte(`{"name":"second","n":4}`)},
	})
	produce(t, topicS, []rec{
		{key: `"s-1"`, value: []byte(`{"name":"quoted"}`)},
		{key: `s-2`, value: []byte(`{"name":"plain"}`)},
	})
	w := startWorker(t, "w1", map[string]string{
		"KAFKA_TOPICS": topicC + "," + topicS, "KAFKA_GROUP": group, "SINK_MAPPING": "columns",
		"SINK_TABLE_MAP": topicC + "=" + tableC + "," + topicS + "=" + tableS,
	})
	waitApplied(t, pool, group, topicC, 30*time.Second)
	waitApplied(t, pool, group, topicS, 30*time.Second)
	assert.Equal(t, 3.0, w.series(t, "sinkworker_records_total", "outcome", "unknown_fields"),
		"extra, extra and more: fields no column takes")

	type rowC struct {
		Tenant, Name, Status, Topic string
		ID, N                       int
		Partition                   int32
		Offset, TimestampMs         int64
	}
	rows, err := pool.Query(t.Context(), `SELECT tenant, id, name, n, status, coalesce(kafka_topic, ''),
	coalesce(kafka_partition, -1), coalesce(kafka_offset, -1), coalesce((extract(epoch FROM kafka_timestamp) * 1000)::bigint, -1)
FROM `+c+` ORDER BY tenant, id`)
	require.NoError(t, err)
	var gotC []rowC
	var r rowC
	_, err = pgx.ForEachRow(rows, []any{&r.Tenant, &r.ID, &r.Name, &r.N, &r.Status, &r.Topic, &r.Partition, &r.Offset, &r.TimestampMs},
		func() error { gotC = append(gotC, r); return nil })
	require.NoError(t, err)
	log := readTopic(t, topicC)
	require.Len(t, log, 4)
	want := func(tenant string, id int, name string, n int, i int) rowC {
		return rowC{Tenant: tenant, ID: id, Name: name, N: n, Status: "new", Topic: topicC,
			Partition: log[i].Partition, Offset: log[i].Offset, TimestampMs: log[i].Timestamp.UnixMilli()}
	}
	assert.Equal(t, []rowC{want("a", 1, "second", 4, 3), want("a", 2, "x", 2, 1), want("b", 1, "y", 3, 2)}, gotC,
		"one row per composite key, the last record's; kafka_* from the record; status keeps its default")

	gotS := map[string]string{}
	rows, err = pool.Query(t.Context(), `SELECT id, name || '/' || status FROM `+s)
	require.NoError(t, err)
	var id, v string
	_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error { gotS[id] = v; return nil })
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"s-1": "quoted/new", "s-2": "plain/new"}, gotS,
		"a JSON string key is unquoted, a plain key taken as it is")

	// A column added at run time: records carrying it are written to it
	// once the worker reads the catalog again.
	adminExec(t, pool, `ALTER TABLE `+c+` ADD COLUMN color text`)
	added := time.Now()
	var landed int
	for i := 0; landed == 0; i++ {
		require.Less(t, time.Since(added), time.Minute, "the new column was never written")
		produce(t, topicC, []rec{{key: fmt.Sprintf(`{"tenant":"c","id":%d}`, i), value: []byte(`{"name":"p","n":0,"color":"red"}`)}})
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM `+c+` WHERE color = 'red'`).Scan(&landed))
	}
	t.Logf("the added column was written %s after ALTER TABLE", time.Since(added).Round(100*time.Millisecond))
	waitApplied(t, pool, group, topicC, 30*time.Second)
	w.stop()
	assert.Zero(t, dlqCount(t, topicC+".dlq"))
	assert.Zero(t, dlqCount(t, topicS+".dlq"))
}

// Package dataset is the records the bench harnesses produce and then
// expect to find in PostgreSQL: record i has key "user-<n>", n drawn
// uniformly with a fixed seed (so keys repeat), and a ~100-byte JSON value
// rebuilt on demand, so a harness can hold millions of records compactly.
// A Layout is where one topic's broker put them.
//
//	d := dataset.New(records, keys)
//	l, err := dataset.Produce(ctx, d, topic, parts, nil, kgo.SeedBrokers(brokers...))
//	rows, offsetSum := l.Expected(d) // what an upsert table must hold
package dataset

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// ValueSize is the target size of a record value, bytes.
const ValueSize = 100

// Dataset is the records, compactly. It is read-only once built, so safe
// for concurrent use.
type Dataset struct {
	// N is the number of records.
	N int
	// DistinctKeys is how many different keys the records have.
	DistinctKeys int

	keyIdx []int32 // record i has key "user-<keyIdx[i]>"
	points []int32
}

// New draws n records with keys uniformly from keys distinct ones, always
// with the same seed: the same arguments give the same records.
func New(n, keys int) *Dataset {
	d := &Dataset{N: n, keyIdx: make([]int32, n), points: make([]int32, n)}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make([]bool, keys)
	for i := range n {
		k := rng.IntN(keys)
		d.keyIdx[i], d.points[i] = int32(k), int32(rng.IntN(10_000))
		if !seen[k] {
			seen[k] = true
			d.DistinctKeys++
		}
	}
	return d
}

// Key is record i's key, "user-<n>".
func (d *Dataset) Key(i int32) []byte {
	return strconv.AppendInt([]byte("user-"), int64(d.keyIdx[i]), 10)
}

// Value is record i's value with tsMs (Unix milliseconds) as its "ts", about
// ValueSize bytes of JSON, e.g.
// {"user_id":123,"event":"points-changed","points":4567,"ts":"2026-01-02T03:04:05.678Z","pad":"abc..."}.
func (d *Dataset) Value(i int32, tsMs int64) []byte {
	b := make([]byte, 0, ValueSize+16)
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, int64(d.keyIdx[i]), 10)
	b = append(b, `,"event":"points-changed","points":`...)
	b = strconv.AppendInt(b, int64(d.points[i]), 10)
	b = append(b, `,"ts":"`...)
	b = time.UnixMilli(tsMs).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","pad":"`...)
	for j := 0; j < max(1, ValueSize-len(b)-2); j++ {
		b = append(b, byte('a'+(int(i)+j)%26))
	}
	return append(b, `"}`...)
}

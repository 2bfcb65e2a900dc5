package main

import (
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/avro"
)

var testOrder = order{id: 42, cents: 1234567890, created: time.Date(2026, 11, 3, 4, 5, 6, 123456000, time.UTC).UnixMicro(), tags: 0b101, note: true}

func TestOrderJSON(t *testing.T) {
	b := testOrder.appendJSON(nil, 7)
	assert.Equal(t, `{"id":42,"name":"customer-42","amount":12345678.90,"created":"2026-11-03T04:05:06.123456Z","day":"2026-11-03","tags":["red","blue"],"note":"deliver to door 7"}`, string(b))
	noNote := testOrder
	noNote.note, noNote.tags, noNote.cents = false, 0, 5
	b = noNote.appendJSON(nil, 7)
	assert.True(t, json.Valid(b), string(b))
	assert.Contains(t, string(b), `"amount":0.05,`)
	assert.Contains(t, string(b), `"tags":[],"note":null}`)
}

func TestOrderAvro(t *testing.T) {
	c := &avroCodec{key: avro.MustParse(orderKeySchema), value: avro.MustParse(orderValueSchema), keyID: 1, valueID: 258}
	k, v, err := c.encode(testOrder, 7)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 0, 0, 0, 1}, k[:5])
	assert.Equal(t, []byte{0, 0, 0, 1, 2}, v[:5])
	var key avroOrderKey
	_, err = c.key.Decode(k[5:], &key)
	require.NoError(t, err)
	assert.Equal(t, int64(42), key.ID)
	var got avroOrder
	_, err = c.value.Decode(v[5:], &got)
	require.NoError(t, err)
	assert.Equal(t, "customer-42", got.Name)
	assert.Equal(t, 0, got.Amount.Cmp(big.NewRat(1234567890, 100)), got.Amount.String())
	assert.True(t, got.Created.Equal(time.UnixMicro(testOrder.created)))
	assert.Equal(t, "2026-11-03", got.Day.Format(time.DateOnly))
	assert.Equal(t, []string{"red", "blue"}, got.Tags)
	require.NotNil(t, got.Note)
	assert.Equal(t, "deliver to door 7", *got.Note)
}

func TestOrdersLayout(t *testing.T) {
	o := newOrders(1000, 50, 4)
	next := make([]int64, 4)
	ids := map[int64]bool{}
	for i, r := range o.recs {
		require.Equal(t, int32(r.id%4), o.part[i])
		require.Equal(t, next[o.part[i]], o.off[i], "offsets of a partition run 0, 1, ...")
		next[o.part[i]]++
		ids[r.id] = true
	}
	rows, sum := o.expected()
	assert.Equal(t, len(ids), rows)
	assert.Positive(t, sum)
	assert.Equal(t, o.recs, newOrders(1000, 50, 4).recs, "a fixed seed")
}

func TestMedianF(t *testing.T) {
	assert.InDelta(t, 0.95, medianF([]float64{1.0, 0.9}), 1e-9)
	assert.InDelta(t, 0.93, medianF([]float64{1.09, 0.93, 0.92}), 1e-9)
}

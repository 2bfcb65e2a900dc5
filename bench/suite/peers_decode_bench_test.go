package main

import (
	"testing"

	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// BenchmarkPeersDecode: the peers' records through the Connect JSON
// decoder, key and value, as the worker decodes them: one decoder for
// every topic's keys and values.
func BenchmarkPeersDecode(b *testing.B) {
	keys := format.NewConnectJSON()
	values := keys
	var dst []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var err error
		if dst, _, err = keys.AppendJSON(dst[:0], peersKey(i)); err != nil {
			b.Fatal(err)
		}
		if dst, _, err = values.AppendJSON(dst[:0], peersValue(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// formatsGoal is the bar: the Avro topic drains at this fraction
// of the JSON topic's rate or better.
const formatsGoal = 0.9

func (f *formatsOptions) flags(fs *flag.FlagSet) {
	fs.IntVar(&f.parts, "formats-partitions", 8, "partitions of the formats scenario's two topics (JSON, Avro)")
	fs.IntVar(&f.pairs, "formats-pairs", 3, "JSON/Avro drain pairs of the formats scenario, alternating which goes first")
}

func (f *formatsOptions) validate() error {
	if f.parts < 1 || f.pairs < 1 {
		return fmt.Errorf("-formats-partitions and -formats-pairs must be at least 1")
	}
	return nil
}

// smoke: one pair on the smoke run's partitions, unless set.
func (f *formatsOptions) smoke(set map[string]bool, parts int) {
	if !set["formats-partitions"] {
		f.parts = parts
	}
	if !set["formats-pairs"] {
		f.pairs = 1
	}
}

// cpuPerMillion is CPU seconds per million records, start-up included.
func (r formatRun) cpuPerMillion() float64 {
	return r.cpu.Seconds() / float64(r.records) * 1e6
}

func (f *formatsResult) markdown(w func(string, ...any)) {
	w("The same %d records (ids drawn uniformly with a fixed seed from -keys, %d distinct; partition id %% %d; the same offsets and timestamps on both topics) of one shape: id long (the key), name string, amount decimal(10,2), created timestamp-micros, day date, tags array<string>, note optional string. "+
		"**json**: plain JSON values (~%d bytes), the id as a JSON key, SINK_KEY_FORMAT=SINK_VALUE_FORMAT=json, into a typed table created up front; "+
		"**avro**: Confluent's wire format (~%d-byte values), schemas registered in the registry (key id %d, value id %d), encoded with github.com/twmb/avro, SINK_KEY_FORMAT=SINK_VALUE_FORMAT=avro, the table created by the worker from the schemas. "+
		"Both: one worker, SINK_MAPPING=columns, upsert, POOL_MAX_CONNS %d, BATCH_MAX_RECORDS 5000, a fresh table and group per run; records/s as the drain scenario measures it. "+
		"After each pair the two tables must have the same columns and types and the same rows (every column but kafka_topic).",
		f.records, f.rows, f.parts, f.jsonBytes, f.avroBytes, f.keySchemaID, f.valSchemaID, min(16, f.parts))
	w("")
	w("| pair | format | records/s | after start-up | first commit | CPU s | CPU s / 1M records | max RSS MiB | peak conns | attempts |")
	w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range f.runs {
		w("| %d | %s | %.0f | %.0f | %.2f s | %.1f | %.1f | %.0f | %d | %d |", r.pair, r.format, r.rate(), r.steadyRate(),
			r.firstCommit.Seconds(), r.cpu.Seconds(), r.cpuPerMillion(), mib(r.maxRSS), r.peakConns, r.attempts)
	}
	w("")
	if len(f.steadyRatios) == 0 {
		w("No complete pair: no ratio.")
		w("")
		return
	}
	per := make([]string, len(f.steadyRatios))
	for i := range f.steadyRatios {
		per[i] = fmt.Sprintf("%.2f (%.2f)", f.steadyRatios[i], f.ratios[i])
	}
	w("avro / json per pair, after start-up (from process start): %s. **Median after start-up: %.2f** (from process start %.2f); goal >= %.1f: **%s**.",
		strings.Join(per, ", "), medianF(f.steadyRatios), medianF(f.ratios), formatsGoal, map[bool]string{true: "met", false: "not met"}[medianF(f.steadyRatios) >= formatsGoal])
	w("")
	for _, c := range f.checked {
		w("- %s", c)
	}
	w("")
}

func (f *formatsResult) summary() string {
	if len(f.steadyRatios) == 0 {
		return "**avro / json** drain: no complete pair"
	}
	return fmt.Sprintf("**avro / json** drain into a typed table at %d partitions: **%.2f** after start-up (median of %d pairs; %.2f from process start); goal >= %.1f",
		f.parts, medianF(f.steadyRatios), len(f.steadyRatios), medianF(f.ratios), formatsGoal)
}

func (f *formatsResult) csv() [][]string {
	var rows [][]string
	g := func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
	i := strconv.Itoa
	for _, r := range f.runs {
		rows = append(rows, []string{"formats-" + r.format, i(r.parts), "1", i(r.pool), "5000", "pair " + i(r.pair) + ", columns, upsert",
			i(r.records), g(r.drain.Seconds()), g(r.rate()), i(r.peakConns), g(r.cpu.Seconds()), g(mib(r.maxRSS)), "", "", "", i(r.attempts),
			g(r.firstCommit.Seconds()), g(r.steadyRate())})
	}
	return rows
}

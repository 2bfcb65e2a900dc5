package k8s_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// metric is one series family of the binary's contract.
type metric struct {
	// Type is counter, gauge or histogram; only a histogram has _bucket,
	// _sum and _count series.
	Type string
	// Labels are the family's own labels (Prometheus adds the target's).
	Labels []string
	// Values lists, for labels with a closed set of values, the values the
	// binary uses; a dashboard selector on such a label must use one.
	Values map[string][]string
}

// contractMetrics is the binary's metric contract (prefix
// sinkworker_, names are never renamed). The dashboard may reference only
// these. TestContractMatchesSource compares it with the names
// sink/observe registers; a test there could compare it with the gathered
// registry instead.
var contractMetrics = map[string]metric{
	"sinkworker_records_total": {Type: "counter", Labels: []string{"topic", "outcome"}, Values: map[string][]string{
		// unknown_fields counts fields, not records (SINK_MAPPING=columns).
		"outcome": {"written", "deleted", "deduplicated", "already_applied", "tombstone_skipped", "not_a_change", "truncated", "truncate_skipped", "dead_lettered", "unknown_fields"},
	}},
	"sinkworker_dead_letters_total":             {Type: "counter", Labels: []string{"topic", "class"}},
	"sinkworker_batch_records":                  {Type: "histogram"},
	"sinkworker_transaction_seconds":            {Type: "histogram"},
	"sinkworker_pool_connections":               {Type: "gauge", Labels: []string{"state"}, Values: map[string][]string{"state": {"in_use", "idle", "max_allowed"}}},
	"sinkworker_pool_acquire_seconds":           {Type: "histogram"},
	"sinkworker_assigned_partitions":            {Type: "gauge"},
	"sinkworker_lag_records":                    {Type: "gauge", Labels: []string{"topic", "partition"}},
	"sinkworker_retries_total":                  {Type: "counter", Labels: []string{"class"}},
	"sinkworker_rebalances_total":               {Type: "counter", Labels: []string{"kind"}, Values: map[string][]string{"kind": {"assigned", "revoked", "lost"}}},
	"sinkworker_pool_limit_rounds_total":        {Type: "counter", Labels: []string{"reason"}, Values: map[string][]string{"reason": {"slow_start", "increase", "decrease", "hold", "idle", "probe", "cap"}}},
	"sinkworker_pool_latency_ratio":             {Type: "gauge"},
	"sinkworker_pool_waiting_partitions":        {Type: "gauge"},
	"sinkworker_last_commit_timestamp_seconds":  {Type: "gauge", Labels: []string{"topic", "partition"}},
	"sinkworker_kafka_commits_total":            {Type: "counter"},
	"sinkworker_ready":                          {Type: "gauge"},
	"sinkworker_halted_partitions":              {Type: "gauge"},
	"sinkworker_offset_out_of_range_total":      {Type: "counter", Labels: []string{"topic"}},
	"sinkworker_db_connections_abandoned_total": {Type: "counter"},
	"sinkworker_schema_columns_added_total":     {Type: "counter", Labels: []string{"topic"}},
}

// collectorMetrics are the standard process series the binary also exports
// (client_golang's process collector, registered beside the contract).
var collectorMetrics = map[string]metric{
	"process_resident_memory_bytes": {Type: "gauge"},
	"process_cpu_seconds_total":     {Type: "counter"},
}

// targetLabels are the labels Prometheus (with the Prometheus Operator's
// ServiceMonitor) attaches to every scraped series.
var targetLabels = []string{"namespace", "job", "pod", "instance", "service", "container", "endpoint"}

// TestContractMatchesSource compares contractMetrics with the metric names
// package observe's source registers (`Name: "sinkworker_..."`), so a
// metric added, renamed or dropped in the binary fails here until the
// contract, and with it the dashboard's check, follows.
func TestContractMatchesSource(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../sink/observe/*.go")
	require.NoError(t, err)
	nameRE := regexp.MustCompile(`Name:\s*"(sinkworker_[a-z_]+)"`)
	registered := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range nameRE.FindAllStringSubmatch(string(data), -1) {
			registered[m[1]] = true
		}
	}
	require.NotEmpty(t, registered, "no metric names found in sink/observe/: has registration moved?")
	for name := range registered {
		assert.Contains(t, contractMetrics, name, "sink/observe registers %s: add it to contractMetrics (and the dashboard)", name)
	}
	for name := range contractMetrics {
		assert.True(t, registered[name], "%s is in contractMetrics but sink/observe registers no such name", name)
	}
}

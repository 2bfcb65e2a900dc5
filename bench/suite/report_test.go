package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDrainReport(t *testing.T) {
	d := &drainResult{
		pointResult: pointResult{point: point{8, 1, 8, 5000}, records: 100_000, drain: 10 * time.Second,
			firstCommit: 2 * time.Second, firstCount: 20_000, stall: 300 * time.Millisecond},
		rows: 90_000, ceiling: 5 * time.Second, writerTx: 8 * time.Second,
	}
	r := &report{o: options{scenarios: map[string]bool{"drain": true}}, drain: d}
	md := r.markdown("x")
	// 10,000 records/s; after start-up 80,000 in 8 s = 10,000; ceiling 20,000; writer's tx 12,500.
	assert.Contains(t, md, "| **ceiling**: write statement alone, 90000 rows | 5.00 s | **20000** | **0.50** (after start-up **0.50**) |")
	assert.Contains(t, md, "| ceiling with the writer's whole transaction | 8.00 s | 12500 | 0.80 (after start-up 0.80) |")
	assert.Contains(t, md, "**drain / ceiling** at 8 partitions: **0.50**, after start-up **0.50**")
	assert.Contains(t, md, "longest time without progress after the first commit 0.30 s")
	assert.NotContains(t, md, "### 2. sinkworker sweep", "a scenario not run has no section")

	r.drain = nil
	assert.Contains(t, r.markdown("x"), "Failed (see below).")
}

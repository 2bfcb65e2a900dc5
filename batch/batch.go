// Package batch holds the pure logic of sinkworker's per-partition batching:
// a flush Policy (records, bytes, linger, whichever comes first), a Batch that
// accumulates records against it, and Dedupe, which collapses a batch to the
// last record per key for upsert mode. Nothing here does I/O or keeps time on
// its own: callers pass the clock in, so every decision is testable.
//
// A Batch is not safe for concurrent use; each partition goroutine owns one.
package batch

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Policy decides when a partition's batch is flushed. A batch is flushed as
// soon as any one limit is reached.
type Policy struct {
	// MaxRecords flushes a batch holding this many records. Default 5000,
	// at least 1.
	MaxRecords int `env:"BATCH_MAX_RECORDS, default=5000"`
	// MaxBytes flushes a batch whose keys and values add up to this many
	// bytes. Default 4 MiB, at least 1. One record larger than MaxBytes
	// still forms a batch of its own.
	MaxBytes int `env:"BATCH_MAX_BYTES, default=4194304"`
	// Linger flushes a non-empty batch this long after its first record
	// arrived. Default 100ms; 0 flushes whatever each poll delivered.
	Linger time.Duration `env:"BATCH_LINGER, default=100ms"`
}

// Validate names every bad field at once, by its environment variable.
func (p Policy) Validate() error {
	var errs []error
	if p.MaxRecords < 1 {
		errs = append(errs, fmt.Errorf("BATCH_MAX_RECORDS: must be at least 1, got %d", p.MaxRecords))
	}
	if p.MaxBytes < 1 {
		errs = append(errs, fmt.Errorf("BATCH_MAX_BYTES: must be at least 1, got %d", p.MaxBytes))
	}
	if p.Linger < 0 {
		errs = append(errs, fmt.Errorf("BATCH_LINGER: must not be negative, got %s", p.Linger))
	}
	return errors.Join(errs...)
}

// Size is the number of bytes a record counts for against Policy.MaxBytes:
// its key and value.
func Size(r *kgo.Record) int { return len(r.Key) + len(r.Value) }

// Batch accumulates one partition's records in offset order until its Policy
// says to flush. The zero value is not usable: use New.
type Batch struct {
	policy  Policy
	records []*kgo.Record
	bytes   int
	started time.Time // when the first record of the current batch arrived
}

// New returns an empty batch that flushes by p.
func New(p Policy) *Batch {
	return &Batch{policy: p}
}

// Add appends r, received at now, and reports whether the batch is now full
// (by records or bytes) and should be flushed before anything else is added.
func (b *Batch) Add(r *kgo.Record, now time.Time) (full bool) {
	if len(b.records) == 0 {
		b.started = now
	}
	b.records = append(b.records, r)
	b.bytes += Size(r)
	return b.Full()
}

// Fits reports whether r can join the batch without taking it past
// MaxBytes. An empty batch takes any record, however large.
func (b *Batch) Fits(r *kgo.Record) bool {
	return len(b.records) == 0 || b.bytes+Size(r) <= b.policy.MaxBytes
}

// Full reports whether a record or byte limit has been reached.
func (b *Batch) Full() bool {
	return len(b.records) >= b.policy.MaxRecords || b.bytes >= b.policy.MaxBytes
}

// Deadline is when the batch must be flushed by Linger; ok is false for an
// empty batch, which has no deadline.
func (b *Batch) Deadline() (deadline time.Time, ok bool) {
	if len(b.records) == 0 {
		return time.Time{}, false
	}
	return b.started.Add(b.policy.Linger), true
}

// Due reports whether the batch should be flushed at now: it is full, or it
// is non-empty and has lingered long enough.
func (b *Batch) Due(now time.Time) bool {
	if b.Full() {
		return true
	}
	d, ok := b.Deadline()
	return ok && !now.Before(d)
}

// Len is the number of records in the batch.
func (b *Batch) Len() int { return len(b.records) }

// Bytes is the number of bytes the batch counts against MaxBytes.
func (b *Batch) Bytes() int { return b.bytes }

// Take returns the batch's records in the order they were added and empties
// the batch. The returned slice belongs to the caller.
func (b *Batch) Take() []*kgo.Record {
	recs := b.records
	b.records = make([]*kgo.Record, 0, len(recs))
	b.bytes = 0
	return recs
}

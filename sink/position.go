package sink

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// position is how far the poll loop has handed a partition its log, for
// moving the stored offset past offsets that hold no record to write: the
// markers that end Kafka transactions (commit or abort) and, under
// read_committed, the aborted records before an abort marker, which the
// client drops. A batch moves next_offset to its last record + 1, so
// without this a topic whose tail is a marker stays one behind forever,
// in the database, in Kafka's committed copy and in every lag figure.
//
// Guarded by the partition's mu.
type position struct {
	start    int64 // the first offset fetched in this assignment; -1 until known
	lastData int64 // the offset of the last record handed over for writing; -1 if none
	end      int64 // one past the last record handed over, data or marker; -1 if none
	epoch    int32 // leader epoch of the record at end-1, for Kafka's commit
	logEnd   int64 // the end lag is measured against, at the last fetch
	moved    int64 // the highest end skipMarkers has settled (its goroutine's alone, no lock)
}

func newPosition() position {
	return position{start: -1, lastData: -1, end: -1, logEnd: -1, moved: -1}
}

// setStart records the offset the partition's fetching starts at, when
// startOffsets knows it exactly (a stored or committed offset).
func (p *partition) setStart(offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pos.end < 0 {
		p.pos.start = offset
	}
}

// take hands the records of one fetch, in offset order, to the partition:
// data records are offered for writing, control records (transaction
// markers) only move the position. logEnd is the end lag is measured
// against: the last stable offset under read_committed, else the high
// watermark.
func (p *partition) take(records []*kgo.Record, logEnd int64, share int) {
	data := records[:0:0]
	for _, r := range records {
		if !r.Attrs.IsControl() {
			data = append(data, r)
		}
	}
	if len(data) > 0 {
		p.offer(data, logEnd, share)
	}
	p.mu.Lock()
	if p.pos.start < 0 {
		p.pos.start = records[0].Offset // fetching began at the log's start or end
	}
	if len(data) > 0 {
		p.pos.lastData = data[len(data)-1].Offset
	}
	last := records[len(records)-1]
	p.pos.end, p.pos.epoch, p.pos.logEnd = last.Offset+1, last.LeaderEpoch, logEnd
	p.mu.Unlock()
	if len(data) == 0 {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// fetchOffset is the offset the partition's next fetch asks for.
func (p *partition) fetchOffset() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pos.end >= 0 {
		return p.pos.end
	}
	return p.pos.start
}

// skipMarkers moves the stored offset past the markers (and aborted
// records) that ended the last fetch, once everything before them is
// written. The partition's goroutine calls it with an empty batch.
//
// Why it never skips a record (I8) and keeps fencing: let to be one past
// the last record handed over and low the offset after the last data
// record handed over (or where fetching started, if none was). Every
// offset in [low, to) held a marker, an aborted record or nothing
// (compaction): the poll loop hands over every record it fetches, in
// order, and a partition only fetches forward from where it started. The
// move happens only if the stored offset is already at least low, which
// proves every data record below low was applied or dead-lettered,
// whoever wrote it; and only forward. A zombie that lost the partition
// therefore moves the row at most past offsets that hold nothing to
// write, never backwards, and never past a record the new owner has not
// applied: those are at or above the stored offset, so at or above low,
// and none lies below to. An operator's reset below low is left alone.
func (p *partition) skipMarkers() {
	p.mu.Lock()
	low := max(p.pos.start, p.pos.lastData+1)
	to, epoch, logEnd := p.pos.end, p.pos.epoch, p.pos.logEnd
	idle := len(p.queue) == 0
	p.mu.Unlock()
	if !idle || to <= low || to <= p.pos.moved {
		return // nothing but data handed over since the last move, or records still to write
	}
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	wrote, err := p.offs.SkipMarkers(ctx, p.w.pool, p.topic, p.id, to, low)
	if err != nil {
		// The next fetch that ends in a marker tries again; a batch of
		// data moves the offset past these markers anyway.
		p.log.Warn("moving the offset past transaction markers failed", "err", err, "to", to)
		return
	}
	p.pos.moved = to
	if !wrote {
		return // the stored offset is already at or past to, or below low
	}
	p.w.committer.mark(p.topic, p.id, to, epoch)
	p.w.metrics.Lag.WithLabelValues(p.topic, p.label).Set(float64(max(0, logEnd-to)))
	p.log.Debug("offset moved past transaction markers", "next_offset", to)
}

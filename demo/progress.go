package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// sample is one look at the pipeline.
type sample struct {
	at        time.Time
	produced  int64   // records acknowledged by the broker
	sunk      int64   // sum of next_offset in the offsets table: records applied or dead-lettered
	rate      float64 // records sunk per second, over the last ~2 s
	members   int     // group members as the broker sees them
	running   int     // worker processes alive
	conns     int     // the fleet's database connections (pg_stat_activity)
	active    int     // of which running a statement
	assigned  int     // sum of the workers' sinkworker_assigned_partitions
	perWorker []int   // each worker's sinkworker_assigned_partitions, -1 when not running
	dlq       int64   // records in the dead-letter topic
}

// takeSample reads every figure; a figure that cannot be read keeps its
// previous value (prev), so a slow scrape never fails the run.
func (r *run) takeSample(ctx context.Context, prev sample, window []sample) sample {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s := prev
	s.at = time.Now()
	if r.prod != nil {
		s.produced = r.prod.acked.Load()
	}
	_ = r.pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0)::bigint FROM sink_offsets
		WHERE consumer_group = $1 AND topic = $2`, r.names.group, r.names.topic).Scan(&s.sunk)
	_ = r.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'active')
		FROM pg_stat_activity WHERE application_name LIKE $1`, r.appNameLike()).Scan(&s.conns, &s.active)
	s.perWorker = r.fleet.assigned(ctx)
	s.assigned, s.running = 0, 0
	for _, n := range s.perWorker {
		if n >= 0 {
			s.assigned += n
			s.running++
		}
	}
	if gs, err := r.adm.DescribeGroups(ctx, r.names.group); err == nil {
		if g, ok := gs[r.names.group]; ok && g.Err == nil {
			s.members = len(g.Members)
		}
	}
	if ends, err := r.adm.ListEndOffsets(ctx, r.names.dlq); err == nil && ends.Error() == nil {
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		s.dlq = n
	}
	// The rate over at least a second: commits land in batches of
	// thousands, so a shorter span gives bursts, not a rate.
	if len(window) > 0 {
		if dt := s.at.Sub(window[0].at).Seconds(); dt >= 1 {
			s.rate = float64(s.sunk-window[0].sunk) / dt
		}
	}
	return s
}

// appNameLike matches the fleet's application_name, sinkworker/<group>/<member>.
func (r *run) appNameLike() string {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(r.names.group)
	return `sinkworker/` + esc + `/%`
}

// progress prints the live progress: one line redrawn in place on a
// terminal, else a line every few seconds. Event lines go above it.
type progress struct {
	out       io.Writer
	tty       bool
	start     time.Time
	live      bool // a progress line is on screen and must be cleared first
	lastPrint time.Time
}

func newProgress(out io.Writer, tty bool, start time.Time) *progress {
	return &progress{out: out, tty: tty, start: start}
}

// say prints a line of its own.
func (p *progress) say(line string) {
	p.clear()
	fmt.Fprintln(p.out, line)
}

// show prints s: on a terminal a two-line block redrawn in place, else
// one line every 3 s (or now, with force).
func (p *progress) show(s sample, total int64, workers, partitions int, force bool) {
	head := fmt.Sprintf("[%5.1fs] produced %s/%s  sunk %s  %s rec/s  lag %s  dlq %d",
		s.at.Sub(p.start).Seconds(), count(s.produced), count(total), count(s.sunk),
		count(int64(s.rate)), count(s.produced-s.sunk), s.dlq)
	body := fmt.Sprintf("members %d/%d  db connections %d (active %d) for %d assigned of %d partitions",
		s.members, workers, s.conns, s.active, s.assigned, partitions)
	if p.tty {
		p.clear()
		fmt.Fprint(p.out, head+"\n         "+body)
		p.live = true
		return
	}
	if force || s.at.Sub(p.lastPrint) >= 3*time.Second {
		fmt.Fprintln(p.out, head+"  "+body)
		p.lastPrint = s.at
	}
}

// clear erases a live progress block (cursor up one line, then clear to
// the end of the screen).
func (p *progress) clear() {
	if p.live {
		fmt.Fprint(p.out, "\r\x1b[1A\x1b[J")
		p.live = false
	}
}

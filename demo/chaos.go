package demo

import (
	"context"
	"fmt"
	"time"
)

// Recovery is what happened to the worker killed halfway.
type Recovery struct {
	// Worker is the member name, e.g. demo-2; Held the partitions it was
	// assigned when it got SIGKILL.
	Worker string
	Held   int
	// AtSunk is how many records were sunk when it was killed.
	AtSunk int64
	// Moved is how long until the survivors held all partitions (the
	// broker waits for the dead member's session timeout, 6 s).
	Moved time.Duration
	// Rejoined is how long from its restart until the group was whole.
	Rejoined time.Duration
}

// chaos kills one worker with SIGKILL once half the records are sunk,
// restarts it once the survivors have taken over its partitions, and
// waits for the group to be whole again.
type chaos struct {
	slot  int
	off   bool
	state int // chaosArmed ...
	at    time.Time
	rec   Recovery
}

const (
	chaosArmed = iota
	chaosKilled
	chaosRestarted
	chaosDone
)

// moveBudget bounds each wait: a group that has not settled by then is
// reported, not waited for forever.
const moveBudget = 45 * time.Second

func (c *chaos) done() bool { return c.off || c.state == chaosDone }

// step advances the plan on sample s.
func (c *chaos) step(ctx context.Context, r *run, s sample) error {
	switch {
	case c.off:
	case c.state == chaosArmed:
		c.kill(r, s)
	case c.state == chaosKilled:
		return c.restart(ctx, r, s)
	case c.state == chaosRestarted:
		c.rejoined(r, s)
	}
	return nil
}

// kill sends SIGKILL halfway, with the group stable: a member killed in
// the middle of a rebalance stalls kfake's group for its 60 s rebalance
// timeout, which is kfake's behaviour, not the worker's.
func (c *chaos) kill(r *run, s sample) {
	if s.sunk*2 < r.prod.total {
		return
	}
	if c.at.IsZero() {
		c.at = time.Now()
	}
	if !r.whole(s) && time.Since(c.at) < moveBudget {
		return
	}
	w := r.fleet.workers[c.slot]
	r.fleet.kill(c.slot)
	c.rec = Recovery{Worker: w.name, Held: max(0, s.perWorker[c.slot]), AtSunk: s.sunk}
	c.state, c.at = chaosKilled, time.Now()
	r.say("%s SIGKILL %s (pid %d, %s) with %s of %s records sunk", r.elapsed(), w.name, w.pid,
		plural(c.rec.Held, "partition"), count(s.sunk), count(r.prod.total))
}

// restart starts the killed worker again once the survivors hold every
// partition: the broker dropped the dead member after its session timeout.
func (c *chaos) restart(ctx context.Context, r *run, s sample) error {
	workers := r.opts.Workers
	moved := s.members == workers-1 && (workers == 1 || s.assigned == r.opts.Partitions)
	if !moved && time.Since(c.at) < moveBudget {
		return nil
	}
	c.rec.Moved = time.Since(c.at)
	if moved {
		r.say("%s the group moved %s's partitions to the survivors after %.1fs (its session timed out); restarting it",
			r.elapsed(), c.rec.Worker, c.rec.Moved.Seconds())
	} else {
		r.problem("the survivors did not take over %s's partitions within %s", c.rec.Worker, moveBudget)
	}
	w, err := r.fleet.start(ctx, c.slot)
	if err != nil {
		return err
	}
	c.state, c.at = chaosRestarted, time.Now()
	r.say("%s restarted %s (pid %d); it resumes from the offsets in the database", r.elapsed(), w.name, w.pid)
	return nil
}

// rejoined waits for the group to be whole again with the restarted worker.
func (c *chaos) rejoined(r *run, s sample) {
	whole := r.whole(s)
	if !whole && time.Since(c.at) < moveBudget {
		return
	}
	c.rec.Rejoined = time.Since(c.at)
	if whole {
		r.say("%s %s rejoined: %d partitions over %d members again, after %.1fs",
			r.elapsed(), c.rec.Worker, r.opts.Partitions, r.opts.Workers, c.rec.Rejoined.Seconds())
	} else {
		r.problem("the group was not whole within %s of restarting %s", moveBudget, c.rec.Worker)
	}
	c.state = chaosDone
	rec := c.rec
	r.res.Recovery = &rec
}

// plural is "1 partition", "2 partitions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMarkdownSummary(t *testing.T) {
	win := func(pause time.Duration, slow int) window { return window{pause: pause, slow: slow} }
	r := &rebalanceResult{
		o:         rebalanceOptions{parts: 12, rate: 3000, rounds: 2, settle: 15 * time.Second, poll: 50 * time.Millisecond},
		protocols: []string{"classic", "consumer"},
	}
	for round, f := range []time.Duration{time.Second, 2 * time.Second} {
		r.events = append(r.events,
			event{round: round + 1, kind: kindQuiet, windows: []window{win(200*milli, 0), win(300*milli, 0)}},
			event{round: round + 1, protocol: "classic", kind: kindJoin, windows: []window{win(3*f, 4), win(250*milli, 0)}},
			event{round: round + 1, protocol: "classic", kind: kindLeave, exit: 400 * milli, windows: []window{win(2*f, 4), win(250*milli, 0)}},
			event{round: round + 1, protocol: "consumer", kind: kindJoin, windows: []window{win(250*milli, 0), win(f, 4)}},
			event{round: round + 1, protocol: "consumer", kind: kindLeave, exit: 300 * milli, windows: []window{win(250*milli, 0), win(4*f, 4)}},
		)
	}
	var b strings.Builder
	r.markdown(func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) })
	md := b.String()
	// medians over the two rounds: classic join 4.5 s, consumer 1.5 s; classic leave 3 s, consumer 6 s.
	assert.Contains(t, md, "- **Scale-out (join) pause: classic median 4.50 s, consumer 1.50 s; ratio classic/consumer 3.00**")
	assert.Contains(t, md, "- **Scale-in (leave) pause: classic median 3.00 s, consumer 6.00 s; ratio classic/consumer 0.50**")
	assert.Contains(t, md, "| classic | 2 | **4.50 s** | 6.00 s | 4.0 | 4 |")
	assert.Contains(t, md, "| consumer, quiet window | 2 | **0.30 s** | 0.30 s | 0.0 | 0 |")
	assert.Contains(t, md, "| classic, during the other protocol's events | 4 | **0.25 s** | 0.25 s | 0.0 | 0 |")
	assert.Contains(t, md, "classic median 0.40 s, max 0.40 s; consumer median 0.30 s, max 0.30 s")
	assert.Contains(t, md, "| 2 | consumer leave |")
}

func TestRatio(t *testing.T) {
	assert.Equal(t, "n/a", ratio(time.Second, 0))
	assert.Equal(t, "2.00", ratio(2*time.Second, time.Second))
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sinkworker/sinkworker/bench/internal/sinkdb"
	"github.com/sinkworker/sinkworker/pool"
)

// workerSample is what one worker's /metrics said at a sample.
type workerSample struct {
	ok      bool    // it answered with its adaptive limit
	limit   float64 // sinkworker_pool_connections{state="max_allowed"}
	inUse   float64 // sinkworker_pool_connections{state="in_use"}
	ratio   float64 // sinkworker_pool_latency_ratio
	waiting float64 // sinkworker_pool_waiting_partitions
	written float64 // sinkworker_records_total{outcome="written"}, all topics
	rounds  map[string]float64
}

// probing reports whether the worker is in a probe round (one round at half
// the limit every pool.ProbeEvery): a round that starts a probe and the
// probe round itself are both counted with reason probe, so an odd count
// means a probe is under way.
func (w workerSample) probing() bool { return int(w.rounds[pool.ReasonProbe])%2 == 1 }

// sample is the fleet, the group's progress and the other load at one
// moment.
type sample struct {
	at        time.Time
	workers   []workerSample
	committed int64 // sum of the group's next_offset: records applied
	drained   int   // partitions whose next_offset reached their end offset
	loadTx    int64 // the other load's transactions so far
}

// complete reports whether every worker answered.
func (s sample) complete() bool {
	for _, w := range s.workers {
		if !w.ok {
			return false
		}
	}
	return true
}

// probing reports whether some worker is in a probe round.
func (s sample) probing() bool {
	for _, w := range s.workers {
		if w.probing() {
			return true
		}
	}
	return false
}

// sum adds f of every worker.
func (s sample) sum(f func(workerSample) float64) float64 {
	t := 0.0
	for _, w := range s.workers {
		t += f(w)
	}
	return t
}

// total is the fleet's limit: the sum of the workers' limits.
func (s sample) total() float64 { return s.sum(func(w workerSample) float64 { return w.limit }) }

// meanRatio is the workers' mean latency ratio.
func (s sample) meanRatio() float64 {
	return s.sum(func(w workerSample) float64 { return w.ratio }) / float64(len(s.workers))
}

// waiting is the partitions waiting for a turn, all workers.
func (s sample) waiting() float64 { return s.sum(func(w workerSample) float64 { return w.waiting }) }

// written is the records the workers wrote so far.
func (s sample) written() float64 { return s.sum(func(w workerSample) float64 { return w.written }) }

// sampler takes samples of a run's workers and group.
type sampler struct {
	s      *services
	client *http.Client
	addrs  []string // the workers' HTTP_ADDR
	group  string
	topic  string
	ends   []int64 // each partition's end offset
	load   *otherLoad
}

// take scrapes every worker at once and polls sink_offsets. A worker that
// does not answer is a sample without it (ok false); sink_offsets that
// cannot be read is an error.
func (sm *sampler) take(ctx context.Context) (sample, error) {
	smp := sample{at: time.Now(), workers: make([]workerSample, len(sm.addrs))}
	var wg sync.WaitGroup
	for i, addr := range sm.addrs {
		wg.Go(func() { smp.workers[i] = sm.scrape(ctx, addr) })
	}
	next, err := sinkdb.Next(ctx, sm.s.db, sm.group, sm.topic, len(sm.ends))
	wg.Wait()
	if err != nil {
		return smp, fmt.Errorf("poll sink_offsets: %w", err)
	}
	for p, n := range next {
		smp.committed += n
		if n >= sm.ends[p] {
			smp.drained++
		}
	}
	smp.loadTx = sm.load.tx.Load()
	return smp, nil
}

// scrape reads one worker's /metrics.
func (sm *sampler) scrape(ctx context.Context, addr string) workerSample {
	var w workerSample
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return w
	}
	resp, err := sm.client.Do(req)
	if err != nil {
		return w
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return w
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return w
	}
	w.rounds = map[string]float64{}
	limitSeen := false
	each(fams, "sinkworker_pool_connections", func(labels map[string]string, v float64) {
		switch labels["state"] {
		case "max_allowed":
			w.limit, limitSeen = v, true
		case "in_use":
			w.inUse = v
		}
	})
	each(fams, "sinkworker_pool_latency_ratio", func(_ map[string]string, v float64) { w.ratio = v })
	each(fams, "sinkworker_pool_waiting_partitions", func(_ map[string]string, v float64) { w.waiting = v })
	each(fams, "sinkworker_records_total", func(labels map[string]string, v float64) {
		if labels["outcome"] == "written" {
			w.written += v
		}
	})
	each(fams, "sinkworker_pool_limit_rounds_total", func(labels map[string]string, v float64) { w.rounds[labels["reason"]] += v })
	// The adaptive gauges appear once the worker has opened its pool.
	_, adaptive := fams["sinkworker_pool_latency_ratio"]
	w.ok = limitSeen && adaptive
	return w
}

// each calls f with the labels and value of every gauge or counter of the
// family name.
func each(fams map[string]*dto.MetricFamily, name string, f func(labels map[string]string, v float64)) {
	fam, ok := fams[name]
	if !ok {
		return
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		switch {
		case m.GetGauge() != nil:
			f(labels, m.GetGauge().GetValue())
		case m.GetCounter() != nil:
			f(labels, m.GetCounter().GetValue())
		}
	}
}

package demo

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// sentBad is a bad record as produced, with where it landed.
type sentBad struct {
	kind       string
	key, value []byte
	partition  int32
	offset     int64 // -1 until acknowledged
}

// producer produces the story's events, with the bad records spread evenly
// among them, at a capped rate. Its counters may be read while it runs;
// the story and the bad records only after run returns.
type producer struct {
	cl     *kgo.Client
	story  *story
	events int
	nbad   int
	rate   int

	acked atomic.Int64 // records acknowledged by the broker
	total int64        // events + bad records

	mu       sync.Mutex // guards bad's offsets and firstErr (written by ack callbacks)
	bad      []*sentBad
	firstErr error
	took     time.Duration // time from the first send to the last ack
	started  time.Time     // set before run starts sending
}

func newProducer(brokers []string, topic string, o Options, c codec) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(20_000),
		kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return &producer{cl: cl, story: newStory(o.Events, o.DeletePercent, o.Seed, c), events: o.Events,
		nbad: o.Bad, rate: o.Rate, total: int64(o.Events + o.Bad)}, nil
}

// run produces everything, waits for every acknowledgement and closes the
// client. Per key, records are acknowledged in the order they were sent
// (idempotent producer), so the story's model is what the table must hold.
func (p *producer) run(ctx context.Context) error {
	defer p.cl.Close()
	start := p.started
	chunk := max(1, p.rate/100) // pace in steps of about 10 ms
	for i := range p.events {
		// Bad record j goes after event (j+1)*events/(bad+1).
		for len(p.bad) < p.nbad && i == (len(p.bad)+1)*p.events/(p.nbad+1) {
			if err := p.sendBad(ctx); err != nil {
				return err
			}
		}
		if p.rate > 0 && i%chunk == 0 {
			due := start.Add(time.Duration(float64(i) / float64(p.rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		rec, err := p.story.next()
		if err != nil {
			return err
		}
		p.cl.Produce(ctx, &kgo.Record{Key: rec.key, Value: rec.value}, p.ack)
	}
	for len(p.bad) < p.nbad {
		if err := p.sendBad(ctx); err != nil {
			return err
		}
	}
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.took = time.Since(start)
	if p.firstErr != nil {
		return fmt.Errorf("produce: %w", p.firstErr)
	}
	return nil
}

func (p *producer) sendBad(ctx context.Context) error {
	kind, key, value, err := p.story.bad(len(p.bad))
	if err != nil {
		return err
	}
	b := &sentBad{kind: kind, key: key, value: value, offset: -1}
	p.bad = append(p.bad, b)
	p.cl.Produce(ctx, &kgo.Record{Key: key, Value: value}, func(r *kgo.Record, err error) {
		p.ack(r, err)
		p.mu.Lock()
		b.partition, b.offset = r.Partition, r.Offset
		p.mu.Unlock()
	})
	return nil
}

func (p *producer) ack(_ *kgo.Record, err error) {
	if err != nil {
		p.mu.Lock()
		if p.firstErr == nil {
			p.firstErr = err
		}
		p.mu.Unlock()
		return
	}
	p.acked.Add(1)
}

package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sinkworker/sinkworker/bench/internal/proc"
	"github.com/sinkworker/sinkworker/sink"
)

// fleet is one group protocol's topic, group, table and worker processes:
// two that run from the warm-up to the end and, between a join and the
// next leave, a third. Only the rebalancer's goroutine uses it.
type fleet struct {
	protocol            string // sink.GroupProtocolClassic or sink.GroupProtocolConsumer
	index               int    // its series in the recorder
	topic, group, table string
	parts, id           int
	env                 []string // the workers' environment without SINK_MEMBER
	bin, dir            string   // the worker binary; where the logs go

	base  []*proc.Proc
	third *proc.Proc // nil outside join..leave
	procs []*proc.Proc
}

// start runs a worker named member (SINK_MEMBER), its log in the fleet's
// directory.
func (f *fleet) start(member string) (*proc.Proc, error) {
	env := append(slices.Clip(f.env), "SINK_MEMBER="+member)
	p, err := proc.Start(f.bin, nil, env, filepath.Join(f.dir, fmt.Sprintf("%s-%d.log", member, f.id)))
	if err != nil {
		return nil, err
	}
	f.procs = append(f.procs, p)
	return p, nil
}

// member is the name of worker n (1-based) in round r (0: a base worker).
func (f *fleet) member(n, r int) string {
	if r == 0 {
		return fmt.Sprintf("%s-%d", f.protocol, n)
	}
	return fmt.Sprintf("%s-%d-r%d", f.protocol, n, r)
}

// assignment is the group as the broker describes it.
type assignment struct {
	state   string
	members map[string]int // SINK_MEMBER -> partitions of the topic it owns
}

func (a assignment) String() string {
	var parts []string
	for _, m := range slices.Sorted(maps.Keys(a.members)) {
		parts = append(parts, fmt.Sprintf("%s:%d", m, a.members[m]))
	}
	return a.state + " " + strings.Join(parts, " ")
}

// complete reports whether the group is Stable with n members that share
// all parts partitions, each holding some.
func (a assignment) complete(n, parts int) bool {
	total := 0
	for _, c := range a.members {
		if c == 0 {
			return false
		}
		total += c
	}
	return a.state == "Stable" && len(a.members) == n && total == parts
}

// describe asks the broker for the group: DescribeGroups for a classic
// group, ConsumerGroupDescribe for a KIP-848 one (which fails if the
// workers fell back to the classic protocol).
func (f *fleet) describe(ctx context.Context, adm *kadm.Client) (assignment, error) {
	a := assignment{members: map[string]int{}}
	if f.protocol == sink.GroupProtocolConsumer {
		gs, err := adm.DescribeConsumerGroups(ctx, f.group)
		if err != nil {
			return a, err
		}
		g, ok := gs[f.group]
		if !ok || g.Err != nil {
			return a, fmt.Errorf("describe consumer group %s: %v (not a KIP-848 group?)", f.group, g.Err)
		}
		a.state = g.State
		for _, m := range g.Members {
			a.members[strings.TrimPrefix(m.ClientID, "sinkworker-")] = len(m.Assignment[f.topic])
		}
		return a, nil
	}
	gs, err := adm.DescribeGroups(ctx, f.group)
	if err != nil {
		return a, err
	}
	g, ok := gs[f.group]
	if !ok || g.Err != nil {
		return a, fmt.Errorf("describe group %s: %v", f.group, g.Err)
	}
	a.state = g.State
	for _, m := range g.Members {
		n := 0
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				if t.Topic == f.topic {
					n += len(t.Partitions)
				}
			}
		}
		a.members[strings.TrimPrefix(m.ClientID, "sinkworker-")] = n
	}
	return a, nil
}

package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// What the test reads of a worker's /metrics (testenv reads its JSON log).

// metric is the value of the first /metrics line starting with prefix, or
// "?" when the process does not answer.
func metric(p *proc, prefix string) string {
	addr, _, _, _, _ := p.state()
	resp, err := metricsClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			f := strings.Fields(sc.Text())
			return f[len(f)-1]
		}
	}
	return "0"
}

var metricsClient = &http.Client{Timeout: 300 * time.Millisecond}

// assigned scrapes the sinkworker_assigned_partitions gauge. A stopped or
// dying process does not answer in time.
func (p *proc) assigned() (int, error) {
	addr, _, _, _, _ := p.state()
	if addr == "" {
		return 0, fmt.Errorf("%v: not listening yet", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsClient.Timeout)
	defer cancel()
	return testenv.AssignedPartitions(ctx, addr)
}

package chaos

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPlan checks the fault schedule of both sizes over many seeds: the
// same seed gives the same schedule, every minimum is met, the workers meant
// to run stay within 1..4, and every fault falls inside the fault phase.
func TestPlan(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			for seed := range uint64(200) {
				steps, infra := plan(sz, rand.New(rand.NewPCG(seed, 1)))
				again, againInfra := plan(sz, rand.New(rand.NewPCG(seed, 1)))
				require.Equal(t, steps, again, "seed %d: same seed, same schedule", seed)
				require.Equal(t, infra, againInfra, "seed %d", seed)

				count := map[string]int{}
				n := 2
				for i, s := range steps {
					count[s.kind]++
					switch s.kind {
					case "join":
						n++
					case "leave":
						n--
					}
					require.True(t, n >= 1 && n <= maxWorkers, "seed %d step %d: %d workers", seed, i, n)
					require.Less(t, s.at, sz.faults-sz.freeze, "seed %d step %d", seed, i)
					if i > 0 {
						require.GreaterOrEqual(t, s.at, steps[i-1].at, "seed %d step %d", seed, i)
					}
				}
				for _, i := range infra {
					count[i.kind]++
					require.Less(t, i.at, sz.faults, "seed %d", seed)
				}
				assert.GreaterOrEqual(t, count["kill"], sz.kills)
				assert.GreaterOrEqual(t, count["join"], sz.joins)
				assert.GreaterOrEqual(t, count["leave"], sz.leaves)
				assert.GreaterOrEqual(t, count["zombie"], sz.zombies)
				assert.Equal(t, sz.dbRestarts, count["db-restart"])
				assert.Equal(t, sz.brokerRestarts, count["broker-restart"])
			}
		})
	}
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// ErrNoPrimaryKey marks a table that SINK_MAPPING=columns with
// SINK_MODE=upsert cannot use, as it has no primary key: a bad setting.
var ErrNoPrimaryKey = errors.New("SINK_MAPPING=columns with SINK_MODE=upsert needs a primary key")

// Prepare readies the database for c at start-up, for the worker and the
// commands alike: PrepareTables, retried with backoff while the database is
// unreachable (each failure logged on log) so a worker may start before
// its database, while a fatal error (FatalAtStart) returns at once; then,
// in SINK_MAPPING=columns, each topic's Columns (nil in jsonb mapping). A
// missing table is Fatal; a table without a primary key in upsert mode is
// ErrNoPrimaryKey.
func Prepare(ctx context.Context, db TablesDB, c Config, log *slog.Logger) (map[string]*Columns, error) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.RandomizationFactor = 100*time.Millisecond, 5*time.Second, 0.5
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := PrepareTables(ctx, db, c)
		if err != nil && FatalAtStart(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		if err != nil {
			log.Warn("database not reachable yet, retrying", "err", err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(0))
	if err != nil || c.Mapping != decode.MappingColumns {
		return nil, err
	}
	out := map[string]*Columns{}
	for _, topic := range c.Topics {
		t, err := LoadColumns(ctx, db, c.Table(topic), TableOptions{
			Keyless: c.Mode == decode.ModeInsert, Create: c.CreateTables, Evolve: c.Evolve, ValueKey: c.ValueKey})
		if err != nil {
			return nil, err
		}
		if len(t.PrimaryKey()) == 0 && c.Mode == decode.ModeUpsert && !t.Absent() {
			return nil, fmt.Errorf("%w on %s (topic %s)", ErrNoPrimaryKey, c.Table(topic).Sanitize(), topic)
		}
		out[topic] = t
	}
	return out, nil
}

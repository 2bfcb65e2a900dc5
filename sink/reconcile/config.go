package reconcile

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrSettings marks an error caused by the settings (a missing or malformed
// setting, a table or column that does not exist): the command's exit
// status 2. Every other error is a failure to run.
var ErrSettings = errors.New("bad setting")

// ErrLocked marks a comparison that gave up waiting Config.LockTimeout for
// a table's lock, held by another session (a TRUNCATE, ALTER TABLE, VACUUM
// FULL or LOCK TABLE): a failure to run, worth trying again later.
var ErrLocked = errors.New("lock timeout")

// Config says which two tables Compare compares and how. Build it directly;
// the command fills it from flags and the environment.
type Config struct {
	// SourceURL and TargetURL are PostgreSQL connection strings (URL or
	// key=value). They may name the same database. Required.
	SourceURL, TargetURL string
	// SourceTable and TargetTable name the tables as SQL would, optionally
	// schema-qualified and quoted ("app"."Users"). Required.
	SourceTable, TargetTable string
	// Key is the key columns, present in both tables under the same names.
	// Rows are matched by key. A key need not be unique (a duplicate shows
	// as an extra or missing row), but ranges split only between distinct
	// key values, and an index on the key keeps the range queries cheap.
	// Required.
	Key []string
	// Columns are the compared columns besides the key (the key is always
	// compared). Nil means every column both tables have. An empty,
	// non-nil slice compares the key sets only, as does KeysOnly.
	Columns  []string
	KeysOnly bool
	// LeafRows is the row count at or below which a differing range is
	// fetched row by row (key and row hash) from both sides rather than
	// split further. Default 256; 1 to 1,000,000.
	LeafRows int
	// Fanout is how many subranges a differing range splits into. Default
	// 64; 2 to 1,024. More means fewer round trips and more bytes per level.
	Fanout int
	// Limit is how many keys of each kind (missing, extra, different) the
	// Result lists; the counts are always exact. 0 means DefaultLimit; -1
	// lists none.
	Limit int
	// LockTimeout bounds each wait of a side for a table's lock (its
	// lock_timeout). A comparison takes only a plain SELECT's ACCESS SHARE
	// lock, which only an ACCESS EXCLUSIVE lock held by another session
	// blocks; past LockTimeout it stops with ErrLocked. 0 means
	// DefaultLockTimeout; 1 ms to 1 h.
	LockTimeout time.Duration
}

// DefaultLimit is Config.Limit's default.
const DefaultLimit = 1000

// DefaultLockTimeout is Config.LockTimeout's default.
const DefaultLockTimeout = 10 * time.Second

func (c *Config) defaults() {
	if c.LeafRows == 0 {
		c.LeafRows = 256
	}
	if c.Fanout == 0 {
		c.Fanout = 64
	}
	if c.Limit == 0 {
		c.Limit = DefaultLimit
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = DefaultLockTimeout
	}
}

// Validate names every bad field at once; the error wraps ErrSettings. It
// parses the connection strings but does not connect. Messages never hold
// a connection string.
func (c Config) Validate() error {
	c.defaults()
	var bad []error
	for _, u := range []struct{ name, url string }{{"source", c.SourceURL}, {"target", c.TargetURL}} {
		if u.url == "" {
			bad = append(bad, fmt.Errorf("the %s database URL is required", u.name))
		} else if _, err := pgx.ParseConfig(u.url); err != nil {
			// pgconn's parse errors redact the password.
			bad = append(bad, fmt.Errorf("the %s database URL: %w", u.name, err))
		}
	}
	if c.SourceTable == "" {
		bad = append(bad, errors.New("the source table is required"))
	}
	if c.TargetTable == "" {
		bad = append(bad, errors.New("the target table is required"))
	}
	if c.SourceURL != "" && c.SourceURL == c.TargetURL && c.SourceTable != "" && c.SourceTable == c.TargetTable {
		bad = append(bad, fmt.Errorf("source and target are the same table %s in the same database", c.SourceTable))
	}
	if len(c.Key) == 0 {
		bad = append(bad, errors.New("the key is required (one or more column names)"))
	}
	for _, name := range append(slices.Clone(c.Key), c.Columns...) {
		if name == "" {
			bad = append(bad, errors.New("a key or column name is empty"))
			break
		}
	}
	if c.KeysOnly && len(c.Columns) > 0 {
		bad = append(bad, errors.New("keys-only and a column list exclude each other"))
	}
	if c.LeafRows < 1 || c.LeafRows > 1_000_000 {
		bad = append(bad, fmt.Errorf("leaf rows must be 1 to 1,000,000, got %d", c.LeafRows))
	}
	if c.Fanout < 2 || c.Fanout > 1024 {
		bad = append(bad, fmt.Errorf("fanout must be 2 to 1,024, got %d", c.Fanout))
	}
	if c.Limit < -1 {
		bad = append(bad, fmt.Errorf("limit must be -1 (none) or more, got %d", c.Limit))
	}
	if c.LockTimeout < time.Millisecond || c.LockTimeout > time.Hour {
		bad = append(bad, fmt.Errorf("lock timeout must be 1ms to 1h, got %s", c.LockTimeout))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %w", ErrSettings, errors.Join(bad...))
	}
	return nil
}

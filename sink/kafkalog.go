package sink

import (
	"context"
	"log/slog"
)

// kafkaLogLevel is where the client's own logs start: its info lines (a
// dozen per rebalance) only at LOG_LEVEL=debug, else warnings and errors.
func kafkaLogLevel(c Config) slog.Level {
	if c.SlogLevel() <= slog.LevelDebug {
		return slog.LevelDebug
	}
	return max(c.SlogLevel(), slog.LevelWarn)
}

// atLeast drops records below min before the handler sees them.
type atLeast struct {
	slog.Handler
	min slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(as []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(as), h.min}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.min}
}

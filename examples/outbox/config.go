package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Env is where the services are; main reads it from the environment.
type Env struct {
	KafkaBrokers    string // KAFKA_BROKERS, comma-separated host:port
	TargetURL       string // DATABASE_URL: the points table's database
	SourceURL       string // SOURCE_DATABASE_URL: the user service's database, wal_level=logical
	KafkaConnectURL string // KAFKA_CONNECT_URL: Kafka Connect's REST API (scripts/cdc drives it)
}

// Config is one run of the example.
type Config struct {
	Env Env
	// Users is how many signups commit: the users and points rows at the
	// end. Attempts that roll back come on top. At least 1.
	Users int64
	// RollbackPct is the share of attempts that roll back after writing
	// both rows, in percent, 0 to 90.
	RollbackPct float64
	// Clients is how many signups run at once, each on its own source
	// connection; 1 to 64.
	Clients int
	// Rate caps signup attempts per second across all clients; 0 is no cap.
	// A small run uses it to spread the signups over the worker kill and
	// the Connect restart.
	Rate float64
	// Partitions of the event topic (Debezium creates it), 1 to 64.
	Partitions int
	// Run names everything the run creates; lower-case letters, digits
	// and _, starting with a letter, at most 40. Empty: ob + 8 random hex.
	Run string
	// KillWorker SIGKILLs the worker at a third of the attempts and starts
	// a new one; RestartConnect restarts Kafka Connect at two thirds.
	KillWorker, RestartConnect bool
	// DrainTimeout bounds the wait, after the last signup, for the points
	// table to hold every committed user.
	DrainTimeout time.Duration
	// Sinkworker is the worker binary; empty builds ./cmd/sinkworker.
	Sinkworker string
	// Keep leaves the tables, topic, connector and group in place.
	Keep bool
}

var runName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// Validate names every bad field at once and fills in Run when empty.
func (c *Config) Validate() error {
	var bad []error
	for _, e := range []struct{ name, v string }{
		{"KAFKA_BROKERS", c.Env.KafkaBrokers}, {"DATABASE_URL", c.Env.TargetURL},
		{"SOURCE_DATABASE_URL", c.Env.SourceURL}, {"KAFKA_CONNECT_URL", c.Env.KafkaConnectURL},
	} {
		if e.v == "" {
			bad = append(bad, fmt.Errorf("%s is not set (eval \"$(scripts/services env)\" && eval \"$(scripts/cdc env)\")", e.name))
		}
	}
	if c.Users < 1 {
		bad = append(bad, fmt.Errorf("-users %d: at least 1", c.Users))
	}
	if c.RollbackPct < 0 || c.RollbackPct > 90 {
		bad = append(bad, fmt.Errorf("-rollback-pct %g: between 0 and 90", c.RollbackPct))
	}
	if c.Clients < 1 || c.Clients > 64 {
		bad = append(bad, fmt.Errorf("-clients %d: between 1 and 64", c.Clients))
	}
	if c.Rate < 0 {
		bad = append(bad, fmt.Errorf("-rate %g: 0 or more", c.Rate))
	}
	if c.Partitions < 1 || c.Partitions > 64 {
		bad = append(bad, fmt.Errorf("-partitions %d: between 1 and 64", c.Partitions))
	}
	if c.DrainTimeout <= 0 {
		bad = append(bad, fmt.Errorf("-drain-timeout %v: more than 0", c.DrainTimeout))
	}
	if c.Run == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Run = "ob" + hex.EncodeToString(b[:])
	} else if !runName.MatchString(c.Run) {
		bad = append(bad, fmt.Errorf("-run %q: lower-case letters, digits and _, starting with a letter, at most 40", c.Run))
	}
	return errors.Join(bad...)
}

// Names are what a run creates, all derived from Config.Run.
type Names struct {
	Users, Outbox string // source tables
	Points        string // target table
	Topic         string // the EventRouter's topic for aggregatetype "user"
	Connector     string // Kafka Connect connector; also the slot, publication, topic prefix and group
}

func (c Config) names() Names {
	return Names{
		Users: "users_" + c.Run, Outbox: "outbox_" + c.Run, Points: "points_" + c.Run,
		Topic: c.Run + ".outbox.event.user", Connector: c.Run,
	}
}

// Package sinkdb is what the bench harnesses read and prepare of
// sinkworker's state in PostgreSQL: how far a group has got (its
// sink_offsets rows), the connections an application holds
// (pg_stat_activity), whether an upsert table holds what the records
// imply, and a table of the sink's shape. db is the harness's
// *pgx.Conn or *pgxpool.Pool.
package sinkdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sinkworker/sinkworker/sink/decode"
	"github.com/sinkworker/sinkworker/sink/postgres"
)

// DB is what the functions here need of a *pgx.Conn or *pgxpool.Pool.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Next reads a group's next_offset on topic for each of its parts
// partitions from sink_offsets: all zero while no worker has created the
// table. A row for a partition the topic does not have is an error.
func Next(ctx context.Context, db DB, group, topic string, parts int) ([]int64, error) {
	next := make([]int64, parts)
	rows, err := db.Query(ctx, `SELECT partition, next_offset FROM sink_offsets
WHERE consumer_group = $1 AND topic = $2`, group, topic)
	if err != nil {
		if UndefinedTable(err) {
			return next, nil // the worker has not created it yet
		}
		return nil, err
	}
	var p int32
	var o int64
	_, err = pgx.ForEachRow(rows, []any{&p, &o}, func() error {
		if p < 0 || int(p) >= parts {
			return fmt.Errorf("sink_offsets has a row for partition %d of %d", p, parts)
		}
		next[p] = o
		return nil
	})
	return next, err
}

// Conns counts the pg_stat_activity rows whose application_name is LIKE
// pattern; a worker's are "sinkworker/<group>/%".
func Conns(ctx context.Context, db DB, pattern string) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1`, pattern).Scan(&n)
	return n, err
}

// Check compares a table with what the records imply (see
// dataset.Layout.Expected): wantRows rows, their kafka_offsets summing to
// wantSum.
func Check(ctx context.Context, db DB, table string, wantRows int, wantSum int64) error {
	var rows, sum int64
	err := db.QueryRow(ctx, `SELECT count(*), coalesce(sum(kafka_offset), 0)::bigint FROM `+
		pgx.Identifier{table}.Sanitize()).Scan(&rows, &sum)
	if err != nil {
		return fmt.Errorf("check %s: %w", table, err)
	}
	if rows != int64(wantRows) || sum != wantSum {
		return fmt.Errorf("table %s holds %d rows with offsets summing to %d, want %d rows summing to %d",
			table, rows, sum, wantRows, wantSum)
	}
	return nil
}

// EnsureTable creates table in the sink's upsert shape, or with insert its
// insert shape, and sink_offsets, as a worker consuming topic would
// (postgres.EnsureTables).
func EnsureTable(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, topic, table string, insert bool) error {
	mode := decode.ModeUpsert
	if insert {
		mode = decode.ModeInsert
	}
	return postgres.EnsureTables(ctx, db, postgres.Config{OffsetsTable: pgx.Identifier{"sink_offsets"},
		Topics: []string{topic}, Tables: map[string]pgx.Identifier{topic: {table}}, Mode: mode})
}

// UndefinedTable reports SQLSTATE 42P01: sink_offsets does not exist until
// some worker has created it.
func UndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

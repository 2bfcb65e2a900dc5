package sink

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/internal/testenv"
)

// testConfig is a Config that passes Validate, for topics and mode, with
// tables and offsets table the caller names. The caller owns the names.
func testConfig(t *testing.T, mode, offsetsTable string, tableMap map[string]string, topics ...string) Config {
	t.Helper()
	c := Config{
		Brokers:                []string{"127.0.0.1:9092"},
		Topics:                 topics,
		Group:                  "sinktest",
		StartOffset:            "earliest",
		IsolationLevel:         IsolationReadCommitted,
		SessionTimeout:         45 * time.Second,
		GroupProtocol:          GroupProtocolClassic,
		DatabaseURL:            testenv.DatabaseURL(t),
		TableMap:               tableMap,
		Mode:                   mode,
		Mapping:                MappingJSONB,
		DeleteOnTombstone:      true,
		MaxRecordBytes:         4 << 20,
		BufferMaxBytes:         64 << 20,
		FetchMaxPartitionBytes: 256 << 10,
		OffsetsTable:           offsetsTable,
		ErrorPolicy:            "dlq",
		HTTPAddr:               ":9090",
		ShutdownTimeout:        30 * time.Second,
		TxIdleTimeout:          60 * time.Second,
		TxTimeout:              60 * time.Second,
		LogLevel:               "info",
		LogFormat:              "json",
	}
	c.Batch.MaxRecords, c.Batch.MaxBytes, c.Batch.Linger = 5000, 4<<20, 100*time.Millisecond
	c.Pool.MaxConns = 16
	require.NoError(t, c.Validate(), "test config must be valid")
	return c
}

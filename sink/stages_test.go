package sink

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sinkworker/sinkworker/sink/decode"
)

// TestStageConfigs: the builders hand each stage the settings it uses,
// with identifiers parsed as Validate accepted them.
func TestStageConfigs(t *testing.T) {
	cfg, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(map[string]string{
		"KAFKA_TOPICS": "a,b.c", "SINK_TABLE_MAP": "a=s.t", "SINK_OFFSETS_TABLE": "s.offs", "ERROR_POLICY": "stop",
		"SINK_MAPPING": "columns", "SINK_DELETE_ON_TOMBSTONE": "false", "SINK_MAX_RECORD_BYTES": "1000",
	})))
	require.NoError(t, err)
	pg := cfg.Postgres()
	assert.Equal(t, pgx.Identifier{"s", "offs"}, pg.OffsetsTable)
	assert.Equal(t, pgx.Identifier{"s", "t"}, pg.Table("a"))
	assert.Equal(t, pgx.Identifier{"b_c"}, pg.Table("b.c"))
	assert.True(t, pg.StopOnReject)
	assert.Equal(t, decode.MappingColumns, pg.Mapping)
	assert.Equal(t, cfg.Group, pg.Offsets().Group)
	pk := func() []string { return []string{"id"} }
	dec := cfg.Decode(nil, pk)
	assert.Equal(t, decode.ModeUpsert, dec.Mode)
	assert.Equal(t, 1000, dec.MaxRecordBytes)
	assert.False(t, dec.DeleteOnTombstone)
	assert.Equal(t, []string{"id"}, dec.PrimaryKey())
}

func TestConfigTopicsCollideInOneUpsertTable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // topics the error names; none: valid
	}{
		{name: "sanitised to one name", env: map[string]string{"KAFKA_TOPICS": "orders.v1,orders_v1"},
			want: []string{`"orders.v1"`, `"orders_v1"`}},
		{name: "mapped to one table", env: map[string]string{"KAFKA_TOPICS": "a,b", "SINK_TABLE_MAP": "a=t,b=t"},
			want: []string{`"a"`, `"b"`}},
		{name: "mapped onto another's name", env: map[string]string{"KAFKA_TOPICS": "a,b", "SINK_TABLE_MAP": "a=b"},
			want: []string{`"a"`, `"b"`}},
		{name: "insert mode may share a table", env: map[string]string{"KAFKA_TOPICS": "orders.v1,orders_v1", "SINK_MODE": "insert"}},
		{name: "case makes another table", env: map[string]string{"KAFKA_TOPICS": "a,b", "SINK_TABLE_MAP": "a=T,b=t"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(tt.env)))
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrConfig)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Contains(t, err.Error(), "SINK_TABLE_MAP")
		})
	}
}

func TestSystemicRejectsSetting(t *testing.T) {
	cfg, err := LoadConfig(t.Context(), envconfig.MapLookuper(minimalEnv()))
	require.NoError(t, err)
	assert.Equal(t, 100, cfg.SystemicRejects)
	_, err = LoadConfig(t.Context(), envconfig.MapLookuper(withEnv(map[string]string{"ERROR_SYSTEMIC_REJECTS": "-1"})))
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "ERROR_SYSTEMIC_REJECTS")
}

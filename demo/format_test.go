package demo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sinkworker/sinkworker/internal/testenv"
	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// TestRunTypedFormats runs the demo with Avro and Protobuf records: the
// schemas in srfake, no table beforehand. The workers must create the
// table from the value schema with the type map's PostgreSQL types, the
// key schema's field as primary key, land every row the model holds and
// dead-letter each bad record (a wrong magic byte with class decode).
func TestRunTypedFormats(t *testing.T) {
	common := []TableColumn{
		{"id", "bigint", false}, {"event", "text", true}, {"name", "text", true}, {"email", "text", true},
	}
	meta := []TableColumn{
		{"kafka_topic", "text", true}, {"kafka_partition", "integer", true},
		{"kafka_offset", "bigint", true}, {"kafka_timestamp", "timestamp with time zone", true},
	}
	tests := []struct {
		format  string
		columns []TableColumn // after common, before meta
		classes []string      // dead-letter classes the bad records must show
	}{
		{format: FormatAvro, columns: []TableColumn{
			{"points", "bigint", true}, {"balance", "numeric(10,2)", true}, {"tags", "text[]", true},
			{"signed_up", "date", true}, {"updated_at", "timestamp with time zone", true},
		}, classes: []string{"decode", "schema", "key"}},
		{format: FormatProtobuf, columns: []TableColumn{
			{"points", "integer", true}, {"score", "double precision", true}, {"gold", "boolean", true},
			{"tags", "text[]", true}, {"updated_at", "timestamp with time zone", true},
		}, classes: []string{"decode", "schema", "key"}},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			const events, bad = 3000, 5
			opts := DefaultOptions()
			opts.Format, opts.Events, opts.Workers, opts.Partitions, opts.Bad, opts.NoKill = tc.format, events, 2, 3, bad, true
			opts.WorkerBinary, opts.WorkerEnv = workerBinary, testenv.ProcessEnv()
			var out bytes.Buffer
			opts.Out = &out
			res, err := Run(t.Context(), opts)
			t.Log("\n" + out.String())
			require.NoError(t, err)

			assert.True(t, res.Passed, "problems: %q", res.Problems)
			assert.Equal(t, tc.format, res.Format)
			want := append(append(append([]TableColumn(nil), common...), tc.columns...), meta...)
			assert.Equal(t, want, res.Columns, "the table created from the %s value schema", tc.format)
			assert.Equal(t, int64(events+bad), res.Sunk)
			assert.Positive(t, res.Rows)
			assert.Equal(t, res.Model, res.Rows, "table rows == model rows")
			assert.Zero(t, res.Mismatch)
			require.Len(t, res.SampleRows, 3)
			assert.True(t, json.Valid([]byte(res.SampleRows[0])), res.SampleRows[0])
			require.Len(t, res.DeadLetters, bad)
			classes := map[string]bool{}
			for _, d := range res.DeadLetters {
				assert.NotEmpty(t, d.Kind, "dead letter at %d/%d is a bad record", d.Partition, d.Offset)
				classes[d.Class] = true
				if d.Kind == "wrong magic byte (1, not 0)" {
					assert.Equal(t, "decode", d.Class)
					assert.Contains(t, d.Message, "magic byte")
				}
			}
			for _, c := range tc.classes {
				assert.True(t, classes[c], "a dead letter of class %s among %v", c, classes)
			}
			for _, c := range want[:len(common)+len(tc.columns)] {
				assert.Contains(t, out.String(), c.Name)
				assert.Contains(t, out.String(), c.Type)
			}
			assert.Contains(t, out.String(), "Result: PASS")
			assert.Contains(t, out.String(), "SINK_VALUE_FORMAT="+tc.format)
		})
	}
}

// TestTypedCodecs checks the records the typed codecs write against the
// worker's own decoders: Confluent's framing with the registered ids, a
// body the schema reads, and a model row with the same fields as the
// decoded value. The bad kinds must each break the record.
func TestTypedCodecs(t *testing.T) {
	ids := map[string]int{}
	schemas := map[int]string{}
	reg := func(subject string, s sr.Schema) (int, error) {
		id := len(ids) + 1
		ids[subject], schemas[id] = id, s.Schema
		return id, nil
	}
	avroC, err := newAvroCodec(reg, "t")
	require.NoError(t, err)
	pbC, err := newProtobufCodec(reg, "p")
	require.NoError(t, err)
	compile := map[codec]func(format.Schema) (format.Decoder, error){avroC: format.CompileAvro, pbC: format.CompileProtobuf}
	for c, comp := range compile {
		decs := map[int]format.Decoder{}
		decoder := func(b []byte) format.Decoder {
			id := int(binary.BigEndian.Uint32(b[1:5]))
			if decs[id] == nil {
				d, err := comp(format.Schema{Text: schemas[id]})
				require.NoError(t, err)
				decs[id] = d
			}
			return decs[id]
		}
		s := newStory(2000, 5, 3, c)
		for range 2000 {
			rec, err := s.next()
			require.NoError(t, err)
			require.Zero(t, rec.key[0], "magic byte")
			got, _, err := decoder(rec.key).AppendJSON(nil, rec.key[5:])
			require.NoError(t, err)
			assert.JSONEq(t, `{"id":`+rec.modelKey+`}`, string(got))
			_, err = strconv.Atoi(rec.modelKey)
			require.NoError(t, err)
			if rec.value == nil {
				continue
			}
			got, _, err = decoder(rec.value).AppendJSON(nil, rec.value[5:])
			require.NoError(t, err)
			var gotFields, modelFields map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(got, &gotFields))
			require.NoError(t, json.Unmarshal(rec.row, &modelFields), "%s", rec.row)
			assert.Len(t, modelFields, len(gotFields))
			for k := range gotFields {
				assert.Contains(t, modelFields, k)
			}
		}
		for i := range len(c.badKinds()) {
			kind, key, value, err := s.bad(i)
			require.NoError(t, err)
			assert.NotEmpty(t, kind)
			broken := key == nil || value[0] != 0 || int(binary.BigEndian.Uint32(value[1:5])) > len(ids)
			if !broken {
				_, _, err = decoder(value).AppendJSON(nil, value[5:])
				broken = err != nil
			}
			assert.True(t, broken, "bad record %q reads as a good one", kind)
		}
	}
}

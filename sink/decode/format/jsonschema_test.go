package format

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const jsTestSchema = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "zeta": {"type": "integer"},
    "alpha": {"type": ["string", "null"], "format": "date-time"},
    "price": {"type": "number"},
    "ok": {"type": "boolean"},
    "day": {"type": "string", "format": "date"},
    "at": {"type": "string", "format": "time"},
    "id": {"type": "string", "format": "uuid"},
    "name": {"type": "string", "pattern": "^[a-z]+$"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "nums": {"type": "array", "items": {"type": "integer"}},
    "grid": {"type": "array", "items": {"type": "array"}},
    "addr": {"$ref": "#/definitions/addr"},
    "either": {"type": ["integer", "string"]},
    "maybe": {"anyOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]},
    "anything": {}
  },
  "required": ["zeta", "alpha", "price", "ok", "addr", "anything"],
  "definitions": {"addr": {"type": "object", "properties": {"city": {"type": "string"}}}}
}`

func TestJSONSchemaShape(t *testing.T) {
	d, err := CompileJSONSchema(Schema{Text: jsTestSchema})
	require.NoError(t, err)
	_, shape, err := d.AppendJSON(nil, []byte(`{"zeta":1,"alpha":null,"price":1.5,"ok":true,"addr":{},"anything":null}`))
	require.NoError(t, err)
	require.NotNil(t, shape)
	assert.Equal(t, []Column{
		{Name: "zeta", Type: "bigint", Nullable: false},
		{Name: "alpha", Type: "timestamptz", Nullable: true},
		{Name: "price", Type: "numeric", Nullable: false},
		{Name: "ok", Type: "boolean", Nullable: false},
		{Name: "day", Type: "date", Nullable: true},
		{Name: "at", Type: "time", Nullable: true},
		{Name: "id", Type: "uuid", Nullable: true},
		{Name: "name", Type: "text", Nullable: true},
		{Name: "tags", Type: "text[]", Nullable: true},
		{Name: "nums", Type: "bigint[]", Nullable: true},
		{Name: "grid", Type: "jsonb", Nullable: true},
		{Name: "addr", Type: "jsonb", Nullable: false},
		{Name: "either", Type: "jsonb", Nullable: true},
		{Name: "maybe", Type: "uuid", Nullable: true},
		{Name: "anything", Type: "jsonb", Nullable: true},
	}, shape.Columns)
	_, again, err := d.AppendJSON(nil, []byte(`{"zeta":2,"alpha":null,"price":1,"ok":false,"addr":{},"anything":1}`))
	require.NoError(t, err)
	assert.Same(t, shape, again)
}

func TestJSONSchemaShapeRootRef(t *testing.T) {
	d, err := CompileJSONSchema(Schema{Text: `{"$schema":"https://json-schema.org/draft/2020-12/schema",
		"$ref":"#/$defs/Row","$defs":{"Row":{"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"string"}},"required":["b"]}}}`})
	require.NoError(t, err)
	_, shape, err := d.AppendJSON(nil, []byte(`{"b":1}`))
	require.NoError(t, err)
	require.NotNil(t, shape)
	assert.Equal(t, []Column{{Name: "b", Type: "bigint", Nullable: false}, {Name: "a", Type: "text", Nullable: true}}, shape.Columns)
}

func TestJSONSchemaNoShape(t *testing.T) {
	for name, text := range map[string]string{
		"array root":    `{"type":"array","items":{"type":"integer"}}`,
		"string root":   `{"type":"string"}`,
		"no properties": `{"type":"object"}`,
		"true":          `true`,
	} {
		t.Run(name, func(t *testing.T) {
			d, err := CompileJSONSchema(Schema{Text: text})
			require.NoError(t, err)
			out, shape, err := d.AppendJSON(nil, []byte(` [1] `))
			if err == nil {
				assert.Equal(t, `[1]`, string(out))
			}
			assert.Nil(t, shape)
		})
	}
}

func TestJSONSchemaPassesThrough(t *testing.T) {
	d, err := CompileJSONSchema(Schema{Text: jsTestSchema})
	require.NoError(t, err)
	body := `{"zeta":12345678901234567890,"alpha":"2024-01-02T03:04:05.123456789+02:00","price":0.1000000000000000055511151231257827,` +
		`"ok":true,"addr":{"city":"x"},"anything":[1,{"b":null}],"tags":["a","b"]}`
	out, _, err := d.AppendJSON([]byte("pre"), []byte("\n "+body+"\t\n"))
	require.NoError(t, err)
	assert.Equal(t, "pre"+body, string(out), "numbers keep their text")
}

func TestJSONSchemaRejects(t *testing.T) {
	d, err := CompileJSONSchema(Schema{Text: jsTestSchema})
	require.NoError(t, err)
	base := `"alpha":null,"price":1,"ok":true,"addr":{},"anything":1`
	tests := []struct {
		name, body string
		want       error
		reason     []string
	}{
		{"not JSON", `{"zeta":x}`, ErrCorrupt, []string{"at byte 9"}},
		{"truncated", `{"zeta":`, ErrCorrupt, nil},
		{"trailing data", `{"zeta":1,` + base + `} x`, ErrCorrupt, nil},
		{"two values", `{} {}`, ErrCorrupt, nil},
		{"invalid UTF-8", "\"\xff\"", ErrCorrupt, nil},
		{"empty", ``, ErrCorrupt, nil},
		{"wrong type", `{"zeta":"secret-one",` + base + `}`, ErrSchema, []string{"/properties/zeta/type", `"/zeta"`}},
		{"missing required", `{` + base + `}`, ErrSchema, []string{"required"}},
		{"pattern", `{"zeta":1,"name":"Secret-Two",` + base + `}`, ErrSchema, []string{"/properties/name/pattern", `"/name"`}},
		{"item type", `{"zeta":1,"tags":["a",7],` + base + `}`, ErrSchema, []string{"/properties/tags/items/type", `"/tags/1"`}},
		{"format in draft-07", `{"zeta":1,"day":"secret-date",` + base + `}`, ErrSchema, []string{"format", `"/day"`}},
		{"through a ref", `{"zeta":1,"alpha":null,"price":1,"ok":true,"addr":{"city":5},"anything":1}`, ErrSchema, []string{"/definitions/addr/properties/city/type", `"/addr/city"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, shape, err := d.AppendJSON([]byte("kept"), []byte(tt.body))
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.Equal(t, "kept", string(out))
			assert.Nil(t, shape)
			for _, r := range tt.reason {
				assert.Contains(t, err.Error(), r)
			}
			assert.NotContains(t, err.Error(), "secret")
		})
	}
}

func TestJSONSchemaReferences(t *testing.T) {
	address := `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
		"properties":{"zip":{"$ref":"zip.json"}},"required":["zip"]}`
	zip := `{"type":"string","pattern":"^[0-9]{5}$"}`
	refs := map[string]Schema{"address.json": {Text: address, References: map[string]Schema{"zip.json": {Text: zip}}}}
	for name, root := range map[string]string{
		"relative":      `{"type":"object","properties":{"home":{"$ref":"address.json"}},"required":["home"]}`,
		"with root $id": `{"$id":"https://example.com/schemas/person.json","type":"object","properties":{"home":{"$ref":"address.json"}},"required":["home"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			d, err := CompileJSONSchema(Schema{Text: root, References: refs})
			require.NoError(t, err)
			_, shape, err := d.AppendJSON(nil, []byte(`{"home":{"zip":"12345"}}`))
			require.NoError(t, err)
			assert.Equal(t, []Column{{Name: "home", Type: "jsonb", Nullable: true}}, shape.Columns)
			_, _, err = d.AppendJSON(nil, []byte(`{"home":{"zip":"1234x"}}`))
			assert.ErrorIs(t, err, ErrSchema)
			_, _, err = d.AppendJSON(nil, []byte(`{"home":{}}`))
			assert.ErrorIs(t, err, ErrSchema)
		})
	}
	t.Run("absolute name", func(t *testing.T) {
		d, err := CompileJSONSchema(Schema{
			Text:       `{"properties":{"n":{"$ref":"https://example.org/n.json"}}}`,
			References: map[string]Schema{"https://example.org/n.json": {Text: `{"type":"integer"}`}},
		})
		require.NoError(t, err)
		_, _, err = d.AppendJSON(nil, []byte(`{"n":"x"}`))
		assert.ErrorIs(t, err, ErrSchema)
	})
}

func TestJSONSchemaNeverLoads(t *testing.T) {
	for name, text := range map[string]string{
		"http":        `{"properties":{"a":{"$ref":"http://127.0.0.1:1/x.json"}}}`,
		"file":        `{"properties":{"a":{"$ref":"file:///etc/passwd"}}}`,
		"missing ref": `{"properties":{"a":{"$ref":"other.json"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := CompileJSONSchema(Schema{Text: text})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrSchema)
		})
	}
}

func TestJSONSchemaBadSchema(t *testing.T) {
	for name, text := range map[string]string{
		"not JSON":     `{"type":`,
		"bad keyword":  `{"type":"integr"}`,
		"bad pattern":  `{"pattern":"("}`,
		"bad ref name": `{"$ref":"#/nowhere"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := CompileJSONSchema(Schema{Text: text})
			assert.ErrorIs(t, err, ErrSchema)
		})
	}
}

func TestJSONSchemaDefaultDraft7(t *testing.T) {
	// In draft-07 a $ref's siblings are ignored; in 2020-12 they apply.
	text := `{"definitions":{"any":{}},"properties":{"a":{"$ref":"#/definitions/any","type":"integer"}}}`
	d, err := CompileJSONSchema(Schema{Text: text})
	require.NoError(t, err)
	_, _, err = d.AppendJSON(nil, []byte(`{"a":"x"}`))
	assert.NoError(t, err)

	d, err = CompileJSONSchema(Schema{Text: `{"$schema":"https://json-schema.org/draft/2020-12/schema",` + text[1:]})
	require.NoError(t, err)
	_, _, err = d.AppendJSON(nil, []byte(`{"a":"x"}`))
	assert.ErrorIs(t, err, ErrSchema)
}

func FuzzJSONSchema(f *testing.F) {
	d, err := CompileJSONSchema(Schema{Text: jsTestSchema})
	require.NoError(f, err)
	f.Add(jsTestSchema, `{"zeta":1,"alpha":null,"price":1.5,"ok":true,"addr":{},"anything":null}`)
	f.Add(`{"$ref":"#/a/0","a":[{"properties":{"x":{"anyOf":[{"$ref":"#"}]}}}]}`, `{"zeta":"x"}`)
	f.Add(`{"properties":{"~1":{"type":["null","array"],"items":{"$ref":"#/properties/~01"}}}}`, `[]`)
	f.Fuzz(func(t *testing.T, schema, body string) {
		if root, err := jsReadOrdered(schema); err == nil {
			jsonSchemaShape(root) // must not panic or loop
		}
		out, _, err := d.AppendJSON(nil, []byte(body))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrSchema) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("output is not JSON: %q", out)
		}
	})
}

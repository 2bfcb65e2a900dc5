package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// jsonSchemaBase is the URL the root schema is compiled under: relative
// $refs resolve against it (or against the root's $id). Nothing is ever
// fetched from it.
const jsonSchemaBase = "https://schema-registry.invalid/root.json"

// jsMaxReasonLen bounds each location in a validation error, which goes into
// a dead-letter header.
const jsMaxReasonLen = 200

// jsonSchemaDecoder validates JSON Schema payloads; the payload itself is
// the JSON text.
type jsonSchemaDecoder struct {
	schema *jsonschema.Schema
	shape  *Shape
}

// CompileJSONSchema compiles a JSON Schema for reading payloads in
// Confluent's wire format. The draft is the one its $schema names, else
// draft-07 (Confluent's default). s.References are added as resources
// under the names Text uses for them, resolved against the root's base;
// no schema is ever loaded from the network or the file system, so a $ref
// to anything else fails to compile (ErrSchema). The Shape is that of the
// root object's "properties" (a root $ref to a local definition is
// followed), in the order the schema text lists them. The Decoder is safe
// for concurrent use.
func CompileJSONSchema(s Schema) (Decoder, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(s.Text))
	if err != nil {
		return nil, Invalid("JSON Schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.UseLoader(jsNoLoader{})
	if err := c.AddResource(jsonSchemaBase, doc); err != nil {
		return nil, Invalid("JSON Schema: %v", err)
	}
	added := map[string]bool{jsonSchemaBase: true}
	if err := jsAddReferences(c, added, jsBases(jsonSchemaBase, doc), s.References); err != nil {
		return nil, err
	}
	sch, err := c.Compile(jsonSchemaBase)
	if err != nil {
		return nil, Invalid("JSON Schema does not compile: %s", jsShorten(err.Error()))
	}
	root, err := jsReadOrdered(s.Text)
	if err != nil {
		return nil, Invalid("JSON Schema is not JSON: %v", err)
	}
	return &jsonSchemaDecoder{schema: sch, shape: jsonSchemaShape(root)}, nil
}

// AppendJSON checks body is one JSON value (else ErrCorrupt) that its
// schema accepts (else ErrSchema, naming the failing keyword and the
// instance location but no value), and appends it as it is.
func (d *jsonSchemaDecoder) AppendJSON(dst, body []byte) ([]byte, *Shape, error) {
	if !utf8.Valid(body) {
		return dst, nil, Corrupt("JSON Schema payload is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return dst, nil, Corrupt("JSON Schema payload is not JSON%s", jsSyntaxOffset(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return dst, nil, Corrupt("JSON Schema payload has data after its value")
	}
	if err := d.schema.Validate(v); err != nil {
		return dst, nil, jsValidationReason(err)
	}
	return append(dst, bytes.TrimSpace(body)...), d.shape, nil
}

// jsSyntaxOffset says where a JSON syntax error is, without the character
// found there (row data).
func jsSyntaxOffset(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return " (at byte " + strconv.FormatInt(se.Offset, 10) + ")"
	}
	return ""
}

// jsValidationReason names the first leaf failure: its keyword's location in
// the schema and the instance location. The library's own messages quote
// values (a pattern's subject, say), so they are not used.
func jsValidationReason(err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return Invalid("JSON Schema rejects the payload")
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	kw := strings.TrimPrefix(ve.SchemaURL, jsonSchemaBase)
	if path := ve.ErrorKind.KeywordPath(); len(path) > 0 {
		if !strings.Contains(kw, "#") {
			kw += "#"
		}
		kw += "/" + strings.Join(path, "/")
	}
	return Invalid("JSON Schema keyword %s fails at %q", jsShorten(kw), jsShorten("/"+strings.Join(ve.InstanceLocation, "/")))
}

func jsShorten(s string) string {
	if len(s) <= jsMaxReasonLen {
		return s
	}
	return s[:jsMaxReasonLen] + "..."
}

// jsNoLoader refuses every URL: schemas come from the registry only.
type jsNoLoader struct{}

func (jsNoLoader) Load(u string) (any, error) {
	return nil, errors.New("only registry references are resolved")
}

// jsBases are the URLs a document's relative $refs resolve against:
// the URL it was added under, and its $id when it has one.
func jsBases(at string, doc any) []string {
	bases := []string{at}
	obj, ok := doc.(map[string]any)
	if !ok {
		return bases
	}
	if id, ok := obj["$id"].(string); ok {
		if u := jsResolveURL(at, id); u != "" && u != at {
			bases = append(bases, u)
		}
	}
	return bases
}

// jsAddReferences adds each reference under every URL its name can denote
// (as given when absolute, else resolved against each base) and its $id,
// then its own references likewise.
func jsAddReferences(c *jsonschema.Compiler, added map[string]bool, bases []string, refs map[string]Schema) error {
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		ref := refs[name]
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(ref.Text))
		if err != nil {
			return Invalid("JSON Schema reference %q is not JSON: %v", name, err)
		}
		var urls []string
		for _, b := range bases {
			if u := jsResolveURL(b, name); u != "" {
				urls = append(urls, u)
			}
		}
		if len(urls) == 0 {
			return Invalid("JSON Schema reference name %q is not a URL", name)
		}
		urls = append(urls, jsBases(urls[0], doc)[1:]...)
		for _, u := range urls {
			if added[u] {
				continue
			}
			added[u] = true
			if err := c.AddResource(u, doc); err != nil {
				return Invalid("JSON Schema reference %q: %v", name, err)
			}
		}
		if err := jsAddReferences(c, added, urls, ref.References); err != nil {
			return err
		}
	}
	return nil
}

// jsResolveURL resolves ref against base, without its fragment; "" when
// either does not parse.
func jsResolveURL(base, ref string) string {
	b, err := url.Parse(base)
	if err != nil {
		return ""
	}
	r, err := url.Parse(ref)
	if err != nil {
		return ""
	}
	u := b.ResolveReference(r)
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

// jsNode is a JSON value that keeps its object keys in text order, which
// the Shape's column order needs and Go maps lose.
type jsNode struct {
	keys  []string           // object keys in order
	obj   map[string]*jsNode // nil unless an object
	arr   []*jsNode          // elements, when an array
	lit   any                // string, json.Number, bool or nil, when neither
	isArr bool
}

func (n *jsNode) get(key string) *jsNode {
	if n == nil {
		return nil
	}
	return n.obj[key]
}

func (n *jsNode) str() (string, bool) {
	if n == nil {
		return "", false
	}
	s, ok := n.lit.(string)
	return s, ok
}

func jsReadOrdered(text string) (*jsNode, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	return jsReadNode(dec)
}

func jsReadNode(dec *json.Decoder) (*jsNode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		n := &jsNode{obj: map[string]*jsNode{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := kt.(string)
			v, err := jsReadNode(dec)
			if err != nil {
				return nil, err
			}
			if _, dup := n.obj[key]; !dup {
				n.keys = append(n.keys, key)
			}
			n.obj[key] = v
		}
		_, err = dec.Token()
		return n, err
	case json.Delim('['):
		n := &jsNode{isArr: true}
		for dec.More() {
			v, err := jsReadNode(dec)
			if err != nil {
				return nil, err
			}
			n.arr = append(n.arr, v)
		}
		_, err = dec.Token()
		return n, err
	}
	return &jsNode{lit: tok}, nil
}

// jsMaxRefHops bounds how many local $refs are followed for the Shape.
const jsMaxRefHops = 8

// jsFollow resolves n's local $ref ("#/definitions/x") within root.
func jsFollow(root, n *jsNode) *jsNode {
	for range jsMaxRefHops {
		ref, ok := n.get("$ref").str()
		if !ok || !strings.HasPrefix(ref, "#") {
			return n
		}
		next := jsPointer(root, ref[1:])
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

// jsPointer walks a JSON pointer ("/definitions/x") from root.
func jsPointer(root *jsNode, ptr string) *jsNode {
	ptr, err := url.PathUnescape(ptr)
	if err != nil {
		return nil
	}
	n := root
	if ptr == "" {
		return n
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch {
		case n.obj != nil:
			n = n.obj[tok]
		case n.isArr:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.arr) {
				return nil
			}
			n = n.arr[i]
		default:
			return nil
		}
		if n == nil {
			return nil
		}
	}
	return n
}

// jsonSchemaShape is the Shape of an object schema with "properties", or
// nil.
func jsonSchemaShape(root *jsNode) *Shape {
	n := jsFollow(root, root)
	props := n.get("properties")
	if props == nil || props.obj == nil {
		return nil
	}
	if types, _, ok := jsTypes(root, n); ok && !slices.Contains(types, "object") {
		return nil
	}
	required := map[string]bool{}
	if req := n.get("required"); req != nil {
		for _, r := range req.arr {
			if s, ok := r.str(); ok {
				required[s] = true
			}
		}
	}
	shape := &Shape{Columns: make([]Column, 0, len(props.keys))}
	for _, name := range props.keys {
		typ, nullable := jsColumnType(root, props.obj[name])
		shape.Columns = append(shape.Columns, Column{Name: name, Type: typ, Nullable: nullable || !required[name]})
	}
	return shape
}

// jsColumnType maps a property's schema to a PostgreSQL type, and says
// whether the value may be null.
func jsColumnType(root, n *jsNode) (string, bool) {
	types, typed, ok := jsTypes(root, jsFollow(root, n))
	if !ok {
		return "jsonb", true
	}
	null := slices.Contains(types, "null")
	types = slices.DeleteFunc(slices.Clone(types), func(t string) bool { return t == "null" })
	switch {
	case len(types) == 2 && slices.Contains(types, "integer") && slices.Contains(types, "number"):
		return "numeric", null
	case len(types) != 1:
		return "jsonb", true
	case types[0] == "array":
		items := typed.get("items")
		if items == nil || items.obj == nil {
			return "jsonb", null
		}
		its, ityped, ok := jsTypes(root, jsFollow(root, items))
		its = slices.DeleteFunc(slices.Clone(its), func(t string) bool { return t == "null" })
		if ok && len(its) == 1 {
			if t := jsScalarType(its[0], ityped); t != "" {
				return t + "[]", null
			}
		}
		return "jsonb", null
	}
	if t := jsScalarType(types[0], typed); t != "" {
		return t, null
	}
	return "jsonb", null
}

// jsScalarType maps a primitive JSON Schema type (with its format) to a
// PostgreSQL type, or "".
func jsScalarType(t string, typed *jsNode) string {
	switch t {
	case "integer":
		return "bigint"
	case "number":
		return "numeric"
	case "boolean":
		return "boolean"
	case "string":
		f, _ := typed.get("format").str()
		switch f {
		case "date-time":
			return "timestamptz"
		case "date", "time", "uuid":
			return f
		}
		return "text"
	}
	return ""
}

// jsTypes lists the types a schema allows, from "type" or else from
// the branches of its anyOf/oneOf, and the schema that declares the one
// non-null type (for its format and items). ok is false when they are
// unknown.
func jsTypes(root, n *jsNode) (types []string, typed *jsNode, ok bool) {
	if t := n.get("type"); t != nil {
		return jsTypeNames(t), n, true
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		branches := n.get(kw)
		if branches == nil || !branches.isArr {
			continue
		}
		for _, b := range branches.arr {
			b = jsFollow(root, b)
			t := b.get("type")
			if t == nil {
				return nil, nil, false
			}
			bt := jsTypeNames(t)
			if !slices.Equal(bt, []string{"null"}) {
				typed = b
			}
			types = append(types, bt...)
		}
		return types, typed, len(types) > 0
	}
	return nil, nil, false
}

func jsTypeNames(t *jsNode) []string {
	if s, ok := t.str(); ok {
		return []string{s}
	}
	var names []string
	for _, e := range t.arr {
		if s, ok := e.str(); ok && !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	return names
}

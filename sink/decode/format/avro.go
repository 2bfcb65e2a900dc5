package format

import (
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/avro"
)

// Avro: github.com/twmb/avro parses the schema (names, namespaces,
// references across schemas, logical types); a small reader of our own
// walks the binary datum over that parsed tree and writes JSON straight
// into dst. It skips the library's Go values (time.Time, *big.Rat, maps),
// which cost allocations per field and lose a decimal's written scale.
//
// The JSON follows Avro's JSON encoding except for unions: a union value
// is its branch's value alone, not Avro's {"type": value} wrapper, so a
// ["null","string"] field reads as a string or null and a field of any
// union lands in a column or a jsonb value without unwrapping.

// Limits on what a body can make the reader do, so that a corrupt or
// hostile body costs at most its own size in work.
const (
	// avroMaxDepth bounds the nesting of a recursive schema's values.
	avroMaxDepth = 1000
	// avroMaxEmptyItems bounds the array items of one body that take no
	// bytes (null, an empty record): any other block cannot claim more
	// items than the body has bytes left.
	avroMaxEmptyItems = 1 << 16
)

type avroKind uint8

const (
	avroNull avroKind = iota
	avroBoolean
	avroInt
	avroLong
	avroFloat
	avroDouble
	avroBytes
	avroString
	avroFixed
	avroEnum
	avroArray
	avroMap
	avroRecord
	avroUnion
	avroDecimalBytes
	avroDecimalFixed
	avroUUIDFixed
	avroDate
	avroTimeMillis
	avroTimeMicros
	avroTimestampMillis
	avroTimestampMicros
	avroTimestampNanos
	avroDuration
	avroDbzInt          // an int or long of a Debezium semantic type (dbz)
	avroDbzJSON         // io.debezium.data.Json: a string holding JSON
	avroBits            // io.debezium.data.Bits: bytes, size bits long
	avroVarScaleDecimal // io.debezium.data.VariableScaleDecimal: fields scale, value
)

// avroNode is one schema type compiled for reading.
type avroNode struct {
	kind avroKind
	// pgType is the PostgreSQL type of a column holding this type's value
	// (for a union with null, its other branch's type).
	pgType string
	// nullable is set on a union with a null branch.
	nullable bool
	// empty is set when a value of the type takes no bytes.
	empty bool
	// scalar is set when pgType is a scalar type: an array of it is an
	// array column, not jsonb.
	scalar bool
	size   int // fixed size; Bits' length
	scale  int // decimal scale; for a VariableScaleDecimal, 1 when its value field comes first
	dbz    debeziumType
	// symbols are an enum's symbols as JSON strings.
	symbols [][]byte
	items   *avroNode   // array items, map values
	fields  []avroField // record fields
	// branches are a union's branches, nil for its null branch.
	branches []*avroNode
}

type avroField struct {
	key  []byte // `"name":`, or `,"name":` for all but the first
	node *avroNode
	name string
}

// avroDecoder is a compiled Avro schema; immutable, so safe for
// concurrent use.
type avroDecoder struct {
	root  *avroNode
	shape *Shape
}

// CompileAvro compiles an Avro schema and the named types its references
// define. A schema that does not parse, or names a type nothing defines,
// is an error wrapping ErrSchema.
func CompileAvro(s Schema) (Decoder, error) {
	var cache avro.SchemaCache
	var refs []*avro.Schema
	if err := parseAvroRefs(&cache, s.References, &refs, 0); err != nil {
		return nil, err
	}
	parsed, err := cache.Parse(s.Text)
	if err != nil {
		return nil, Invalid("avro schema: %v", err)
	}
	c := avroCompiler{defs: map[string]*avro.SchemaNode{}, nodes: map[string]*avroNode{}}
	for _, r := range append(refs, parsed) {
		c.define(r.Root(), "")
	}
	root, err := c.compile(parsed.Root(), "")
	if err != nil {
		return nil, err
	}
	d := &avroDecoder{root: root}
	if root.kind == avroRecord {
		d.shape = &Shape{Columns: make([]Column, len(root.fields))}
		for i, f := range root.fields {
			d.shape.Columns[i] = Column{Name: f.name, Type: f.node.pgType, Nullable: f.node.nullable,
				Record: avroRecordShape(f.node, map[*avroNode]*Shape{})}
		}
	}
	return d, nil
}

// avroRecordShape is the Shape of a record field (or a union of null and
// a record), else nil; seen holds the Shapes made so far, so a recursive
// record shares its own.
func avroRecordShape(n *avroNode, seen map[*avroNode]*Shape) *Shape {
	if n.kind == avroUnion && n.nullable {
		var rec *avroNode
		for _, b := range n.branches {
			if b != nil {
				if rec != nil {
					return nil
				}
				rec = b
			}
		}
		if rec == nil {
			return nil
		}
		n = rec
	}
	if n.kind != avroRecord {
		return nil
	}
	if s, ok := seen[n]; ok {
		return s
	}
	s := &Shape{Columns: make([]Column, len(n.fields))}
	seen[n] = s
	for i, f := range n.fields {
		s.Columns[i] = Column{Name: f.name, Type: f.node.pgType, Nullable: f.node.nullable, Record: avroRecordShape(f.node, seen)}
	}
	return s
}

// parseAvroRefs parses refs into cache depth first, each schema's own
// references before it, so every name is defined before it is used. The
// cache returns the earlier result for a schema parsed twice.
func parseAvroRefs(cache *avro.SchemaCache, refs map[string]Schema, out *[]*avro.Schema, depth int) error {
	if depth > avroMaxDepth {
		return Invalid("avro schema references nest deeper than %d", avroMaxDepth)
	}
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ref := refs[name]
		if err := parseAvroRefs(cache, ref.References, out, depth+1); err != nil {
			return err
		}
		parsed, err := cache.Parse(ref.Text)
		if err != nil {
			return Invalid("avro schema reference %q: %v", name, err)
		}
		*out = append(*out, parsed)
	}
	return nil
}

// avroCompiler turns parsed schema trees into avroNodes. A named type is
// compiled once and shared by every reference to it, recursive ones
// included.
type avroCompiler struct {
	defs  map[string]*avro.SchemaNode // named type definitions by full name
	nodes map[string]*avroNode        // compiled named types by full name
}

// fullName is a named type's full name; ns is the enclosing namespace.
func fullName(name, ns string) string {
	if ns == "" || strings.Contains(name, ".") {
		return name
	}
	return ns + "." + name
}

// define records the named types defined in the tree under n.
func (c *avroCompiler) define(n *avro.SchemaNode, ns string) {
	switch n.Type {
	case "record", "error", "enum", "fixed":
		if n.Namespace != "" {
			ns = n.Namespace
		}
		full := fullName(n.Name, ns)
		if _, ok := c.defs[full]; !ok {
			c.defs[full] = n
		}
		if i := strings.LastIndexByte(full, '.'); i >= 0 {
			ns = full[:i]
		}
		for i := range n.Fields {
			c.define(&n.Fields[i].Type, ns)
		}
	case "array":
		c.define(n.Items, ns)
	case "map":
		c.define(n.Values, ns)
	case "union":
		for i := range n.Branches {
			c.define(&n.Branches[i], ns)
		}
	}
}

// compile compiles n, read in namespace ns. A type Kafka Connect's
// AvroConverter wrote takes the Debezium semantic type its connect.name
// gives, and the column type of the source column its
// connect.parameters give.
func (c *avroCompiler) compile(n *avro.SchemaNode, ns string) (*avroNode, error) {
	nd, err := c.compileType(n, ns)
	if err != nil {
		return nil, err
	}
	switch n.Type {
	case "null", "boolean", "int", "long", "float", "double", "bytes", "string", "array", "map":
		// a new node, not a named type's shared one
		if k, ok := debeziumTypes[avroProp(n.Props, "connect.name")]; ok {
			setAvroDebezium(nd, k, n)
		}
		params, _ := n.Props["connect.parameters"].(map[string]any)
		if src, ok := sourceParams(func(name string) string { return avroProp(params, name) }); ok {
			nd.pgType = src.columnType(nd.pgType)
		}
	}
	return nd, nil
}

// avroProp is the text of a custom attribute, "" when absent.
func avroProp(props map[string]any, name string) string {
	s, _ := props[name].(string)
	return s
}

// setAvroDebezium gives nd, compiled from n, the Debezium semantic type
// k when n's Avro type carries it; else nd stays as it is.
func setAvroDebezium(nd *avroNode, k debeziumType, n *avro.SchemaNode) {
	switch {
	case k.isInt() && (nd.kind == avroInt && dbzBase[k] == ctInt32 || nd.kind == avroLong && dbzBase[k] == ctInt64):
		nd.kind = avroDbzInt
	case dbzBase[k] == ctString && nd.kind == avroString:
		if k == dbzJSON {
			nd.kind = avroDbzJSON
		}
	case k == dbzBits && nd.kind == avroBytes:
		nd.kind = avroBits
		params, _ := n.Props["connect.parameters"].(map[string]any)
		nd.size, _ = strconv.Atoi(avroProp(params, "length"))
	default:
		return
	}
	nd.dbz, nd.pgType = k, k.pgType()
}

func (c *avroCompiler) compileType(n *avro.SchemaNode, ns string) (*avroNode, error) {
	switch n.Type {
	case "null":
		return &avroNode{kind: avroNull, pgType: "jsonb", nullable: true, empty: true}, nil
	case "boolean":
		return &avroNode{scalar: true, kind: avroBoolean, pgType: "boolean"}, nil
	case "int":
		switch n.LogicalType {
		case "date":
			return &avroNode{scalar: true, kind: avroDate, pgType: "date"}, nil
		case "time-millis":
			return &avroNode{scalar: true, kind: avroTimeMillis, pgType: "time"}, nil
		}
		return &avroNode{scalar: true, kind: avroInt, pgType: "integer"}, nil
	case "long":
		switch n.LogicalType {
		case "time-micros":
			return &avroNode{scalar: true, kind: avroTimeMicros, pgType: "time"}, nil
		case "timestamp-millis":
			return &avroNode{scalar: true, kind: avroTimestampMillis, pgType: "timestamptz"}, nil
		case "timestamp-micros":
			return &avroNode{scalar: true, kind: avroTimestampMicros, pgType: "timestamptz"}, nil
		case "timestamp-nanos":
			return &avroNode{scalar: true, kind: avroTimestampNanos, pgType: "timestamptz"}, nil
		case "local-timestamp-millis":
			return &avroNode{scalar: true, kind: avroTimestampMillis, pgType: "timestamp"}, nil
		case "local-timestamp-micros":
			return &avroNode{scalar: true, kind: avroTimestampMicros, pgType: "timestamp"}, nil
		case "local-timestamp-nanos":
			return &avroNode{scalar: true, kind: avroTimestampNanos, pgType: "timestamp"}, nil
		}
		return &avroNode{scalar: true, kind: avroLong, pgType: "bigint"}, nil
	case "float":
		return &avroNode{scalar: true, kind: avroFloat, pgType: "real"}, nil
	case "double":
		return &avroNode{scalar: true, kind: avroDouble, pgType: "double precision"}, nil
	case "bytes":
		if n.LogicalType == "decimal" && n.Precision > 0 {
			return &avroNode{scalar: true, kind: avroDecimalBytes, pgType: numericType(n), scale: n.Scale}, nil
		}
		return &avroNode{scalar: true, kind: avroBytes, pgType: "bytea"}, nil
	case "string":
		if n.LogicalType == "uuid" {
			return &avroNode{scalar: true, kind: avroString, pgType: "uuid"}, nil
		}
		return &avroNode{scalar: true, kind: avroString, pgType: "text"}, nil
	case "array", "map":
		return c.compileContainer(n, ns)
	case "union":
		return c.compileUnion(n, ns)
	case "record", "error", "enum", "fixed":
		return c.compileNamed(n, ns)
	}
	full := fullName(n.Type, ns)
	if nd, ok := c.nodes[full]; ok {
		return nd, nil
	}
	def, ok := c.defs[full]
	if !ok {
		if def, ok = c.defs[n.Type]; !ok {
			return nil, Invalid("avro schema: unknown type %q", n.Type)
		}
	}
	if nd, ok := c.nodes[fullName(def.Name, def.Namespace)]; ok {
		return nd, nil
	}
	return c.compileNamed(def, ns)
}

// avroVarScaleDecimalFields makes nd a VariableScaleDecimal when n's
// fields are scale (int) and value (bytes), in either order.
func avroVarScaleDecimalFields(nd *avroNode, n *avro.SchemaNode) bool {
	if len(n.Fields) != 2 {
		return false
	}
	f0, f1 := &n.Fields[0], &n.Fields[1]
	plain := func(t *avro.SchemaNode, typ string) bool { return t.Type == typ && t.LogicalType == "" }
	switch {
	case f0.Name == "scale" && plain(&f0.Type, "int") && f1.Name == "value" && plain(&f1.Type, "bytes"):
	case f0.Name == "value" && plain(&f0.Type, "bytes") && f1.Name == "scale" && plain(&f1.Type, "int"):
		nd.scale = 1
	default:
		return false
	}
	nd.kind, nd.pgType, nd.dbz, nd.scalar = avroVarScaleDecimal, "numeric", dbzVarScaleDecimal, true
	return true
}

// numericType is a decimal's column type; numeric without a precision
// where PostgreSQL's limit (1000 digits) is below the schema's.
func numericType(n *avro.SchemaNode) string {
	if n.Precision > 1000 {
		return "numeric"
	}
	return "numeric(" + strconv.Itoa(n.Precision) + "," + strconv.Itoa(n.Scale) + ")"
}

func (c *avroCompiler) compileContainer(n *avro.SchemaNode, ns string) (*avroNode, error) {
	if n.Type == "map" {
		values, err := c.compile(n.Values, ns)
		if err != nil {
			return nil, err
		}
		return &avroNode{kind: avroMap, pgType: "jsonb", items: values}, nil
	}
	items, err := c.compile(n.Items, ns)
	if err != nil {
		return nil, err
	}
	nd := &avroNode{kind: avroArray, pgType: "jsonb", items: items}
	if items.scalar {
		nd.pgType = items.pgType + "[]"
	}
	return nd, nil
}

func (c *avroCompiler) compileUnion(n *avro.SchemaNode, ns string) (*avroNode, error) {
	nd := &avroNode{kind: avroUnion, pgType: "jsonb", branches: make([]*avroNode, len(n.Branches))}
	var other []*avroNode
	for i := range n.Branches {
		if n.Branches[i].Type == "null" {
			nd.nullable = true
			continue
		}
		b, err := c.compile(&n.Branches[i], ns)
		if err != nil {
			return nil, err
		}
		nd.branches[i] = b
		other = append(other, b)
	}
	if nd.nullable && len(other) == 1 {
		nd.pgType, nd.scalar = other[0].pgType, other[0].scalar
	}
	return nd, nil
}

// compileNamed compiles a record, enum or fixed definition, registering it
// before its fields so a recursive reference finds it.
func (c *avroCompiler) compileNamed(n *avro.SchemaNode, ns string) (*avroNode, error) {
	if n.Namespace != "" {
		ns = n.Namespace
	}
	full := fullName(n.Name, ns)
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		ns = full[:i]
	}
	nd := &avroNode{scalar: n.Type == "enum" || n.Type == "fixed"}
	c.nodes[full] = nd
	switch n.Type {
	case "enum":
		nd.kind, nd.pgType = avroEnum, "text"
		for _, s := range n.Symbols {
			sym, err := AppendString(nil, s)
			if err != nil {
				return nil, Invalid("avro schema: enum %s has a symbol that is not UTF-8", full)
			}
			nd.symbols = append(nd.symbols, sym)
		}
	case "fixed":
		nd.kind, nd.pgType, nd.size, nd.empty = avroFixed, "bytea", n.Size, n.Size == 0
		switch {
		case n.LogicalType == "decimal" && n.Precision > 0:
			nd.kind, nd.pgType, nd.scale = avroDecimalFixed, numericType(n), n.Scale
		case n.LogicalType == "uuid" && n.Size == 16:
			nd.kind, nd.pgType = avroUUIDFixed, "uuid"
		case n.LogicalType == "duration" && n.Size == 12:
			nd.kind, nd.pgType = avroDuration, "interval"
		}
	default:
		if avroProp(n.Props, "connect.name") == "io.debezium.data.VariableScaleDecimal" && avroVarScaleDecimalFields(nd, n) {
			return nd, nil
		}
		nd.kind, nd.pgType, nd.empty = avroRecord, "jsonb", true
		nd.fields = make([]avroField, len(n.Fields))
		for i := range n.Fields {
			f := &n.Fields[i]
			fn, err := c.compile(&f.Type, ns)
			if err != nil {
				return nil, err
			}
			var key []byte
			if i > 0 {
				key = append(key, ',')
			}
			if key, err = AppendString(key, f.Name); err != nil {
				return nil, Invalid("avro schema: record %s has a field name that is not UTF-8", full)
			}
			nd.fields[i] = avroField{key: append(key, ':'), node: fn, name: f.Name}
			// A recursive field is not empty: its value has a union index.
			nd.empty = nd.empty && fn != nd && fn.empty
		}
	}
	return nd, nil
}

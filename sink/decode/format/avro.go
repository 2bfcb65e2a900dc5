package format

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

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
	size   int // fixed size
	scale  int // decimal scale
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
			d.shape.Columns[i] = Column{Name: f.name, Type: f.node.pgType, Nullable: f.node.nullable}
		}
	}
	return d, nil
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

// compile compiles n, read in namespace ns.
func (c *avroCompiler) compile(n *avro.SchemaNode, ns string) (*avroNode, error) {
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

// AppendJSON decodes one Avro binary datum; see Decoder.
func (d *avroDecoder) AppendJSON(dst, body []byte) ([]byte, *Shape, error) {
	r := avroReader{b: body, empty: avroMaxEmptyItems}
	dst, err := r.value(dst, d.root, 0)
	if err != nil {
		return dst, d.shape, err
	}
	if r.i != len(r.b) {
		return dst, d.shape, Corrupt("avro body has %d bytes after its value", len(r.b)-r.i)
	}
	return dst, d.shape, nil
}

// avroReader reads a binary datum from b, at offset i.
type avroReader struct {
	b []byte
	i int
	// empty is how many more array items that take no bytes it reads.
	empty int64
}

func (r *avroReader) long() (int64, error) {
	var u uint64
	for shift := uint(0); shift < 70; shift += 7 {
		if r.i >= len(r.b) {
			return 0, Corrupt("avro body ends inside a number")
		}
		c := r.b[r.i]
		r.i++
		if shift == 63 && c > 1 {
			break
		}
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	return 0, Corrupt("avro body has a number longer than 64 bits")
}

func (r *avroReader) int() (int64, error) {
	v, err := r.long()
	if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
		err = Corrupt("avro body has an int out of 32-bit range")
	}
	return v, err
}

// next returns the next n bytes.
func (r *avroReader) next(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.i {
		return nil, Corrupt("avro body ends inside a value")
	}
	b := r.b[r.i : r.i+n]
	r.i += n
	return b, nil
}

// bytes returns the next length-prefixed bytes.
func (r *avroReader) bytes() ([]byte, error) {
	n, err := r.long()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > int64(len(r.b)-r.i) {
		return nil, Corrupt("avro body has a length beyond its end")
	}
	return r.next(int(n))
}

// str appends the next string as JSON. unsafe.String is safe here:
// AppendString only reads it, and body outlives the call.
func (r *avroReader) str(dst []byte) ([]byte, error) {
	b, err := r.bytes()
	if err != nil || len(b) == 0 {
		return append(dst, `""`...), err
	}
	return AppendString(dst, unsafe.String(&b[0], len(b)))
}

// blockLen reads an array or map block's item count: 0 ends the value, a
// negative count is followed by the block's size in bytes.
func (r *avroReader) blockLen(n *avroNode) (int64, error) {
	count, err := r.long()
	if err != nil || count >= 0 {
		if err == nil {
			err = r.checkCount(count, n)
		}
		return count, err
	}
	if count == math.MinInt64 {
		return 0, Corrupt("avro body has a block count out of range")
	}
	if _, err := r.long(); err != nil {
		return 0, err
	}
	return -count, r.checkCount(-count, n)
}

// checkCount refuses a block of more items than the body can hold.
func (r *avroReader) checkCount(count int64, n *avroNode) error {
	if n.kind == avroArray && n.items.empty {
		if count > r.empty {
			return Corrupt("avro body has more than %d empty array items", avroMaxEmptyItems)
		}
		r.empty -= count
		return nil
	}
	if count > int64(len(r.b)-r.i) {
		return Corrupt("avro body has a block of %d items, more than it can hold", count)
	}
	return nil
}

// value appends the next value of type n as JSON.
func (r *avroReader) value(dst []byte, n *avroNode, depth int) ([]byte, error) {
	switch n.kind {
	case avroNull:
		return append(dst, "null"...), nil
	case avroBoolean:
		b, err := r.next(1)
		if err != nil {
			return dst, err
		}
		if b[0] > 1 {
			return dst, Corrupt("avro body has a boolean byte %d", b[0])
		}
		return AppendBool(dst, b[0] == 1), nil
	case avroInt, avroLong:
		v, err := r.long()
		if err == nil && n.kind == avroInt && (v < math.MinInt32 || v > math.MaxInt32) {
			err = Corrupt("avro body has an int out of 32-bit range")
		}
		return AppendInt(dst, v), err
	case avroFloat:
		b, err := r.next(4)
		if err != nil {
			return dst, err
		}
		return AppendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), 32), nil
	case avroDouble:
		b, err := r.next(8)
		if err != nil {
			return dst, err
		}
		return AppendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(b)), 64), nil
	case avroString:
		return r.str(dst)
	case avroBytes, avroDecimalBytes:
		b, err := r.bytes()
		if err != nil {
			return dst, err
		}
		if n.kind == avroDecimalBytes {
			return appendAvroDecimal(dst, b, n.scale), nil
		}
		return AppendBytes(dst, b), nil
	case avroFixed, avroDecimalFixed, avroUUIDFixed, avroDuration:
		b, err := r.next(n.size)
		if err != nil {
			return dst, err
		}
		return appendFixed(dst, b, n), nil
	case avroEnum:
		i, err := r.int()
		if err != nil {
			return dst, err
		}
		if i < 0 || i >= int64(len(n.symbols)) {
			return dst, Corrupt("avro body has enum index %d of %d symbols", i, len(n.symbols))
		}
		return append(dst, n.symbols[i]...), nil
	case avroDate:
		v, err := r.int()
		return AppendDate(dst, v), err
	case avroTimeMillis, avroTimeMicros:
		return r.timeOfDay(dst, n.kind)
	case avroTimestampMillis, avroTimestampMicros, avroTimestampNanos:
		v, err := r.long()
		if err != nil {
			return dst, err
		}
		var t time.Time
		switch n.kind {
		case avroTimestampMillis:
			t = time.UnixMilli(v)
		case avroTimestampMicros:
			t = time.UnixMicro(v)
		default:
			t = time.Unix(0, v)
		}
		return AppendTimestamp(dst, t.UTC()), nil
	}
	if depth >= avroMaxDepth {
		return dst, Corrupt("avro body nests deeper than %d", avroMaxDepth)
	}
	switch n.kind {
	case avroRecord:
		dst = append(dst, '{')
		for _, f := range n.fields {
			var err error
			if dst, err = r.value(append(dst, f.key...), f.node, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case avroUnion:
		i, err := r.int()
		if err != nil {
			return dst, err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return dst, Corrupt("avro body has union index %d of %d branches", i, len(n.branches))
		}
		if n.branches[i] == nil {
			return append(dst, "null"...), nil
		}
		return r.value(dst, n.branches[i], depth+1)
	case avroArray, avroMap:
		return r.container(dst, n, depth)
	}
	return dst, fmt.Errorf("avro: node kind %d has no reader", n.kind)
}

// timeOfDay appends a time-millis or time-micros value, which must lie
// within one day: PostgreSQL's time would wrap or refuse anything else.
func (r *avroReader) timeOfDay(dst []byte, kind avroKind) ([]byte, error) {
	v, err := r.long()
	if err != nil {
		return dst, err
	}
	if kind == avroTimeMillis {
		if v < math.MinInt32 || v > math.MaxInt32 {
			return dst, Corrupt("avro body has an int out of 32-bit range")
		}
		v *= 1000
	}
	if v < 0 || v >= 86400e6 {
		return dst, Corrupt("avro body has a time of day out of range")
	}
	return AppendTimeOfDay(dst, v), nil
}

// container appends an array as a JSON array, a map as a JSON object.
func (r *avroReader) container(dst []byte, n *avroNode, depth int) ([]byte, error) {
	open, end := byte('['), byte(']')
	if n.kind == avroMap {
		open, end = '{', '}'
	}
	dst = append(dst, open)
	first := true
	for {
		count, err := r.blockLen(n)
		if err != nil {
			return dst, err
		}
		if count == 0 {
			return append(dst, end), nil
		}
		for range count {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			if n.kind == avroMap {
				if dst, err = r.str(dst); err != nil {
					return dst, err
				}
				dst = append(dst, ':')
			}
			if dst, err = r.value(dst, n.items, depth+1); err != nil {
				return dst, err
			}
		}
	}
}

// appendFixed appends a fixed value by its logical type.
func appendFixed(dst, b []byte, n *avroNode) []byte {
	switch n.kind {
	case avroDecimalFixed:
		return appendAvroDecimal(dst, b, n.scale)
	case avroUUIDFixed:
		dst = append(dst, '"')
		dst = hex.AppendEncode(dst, b[:4])
		dst = append(dst, '-')
		dst = hex.AppendEncode(dst, b[4:6])
		dst = append(dst, '-')
		dst = hex.AppendEncode(dst, b[6:8])
		dst = append(dst, '-')
		dst = hex.AppendEncode(dst, b[8:10])
		dst = append(dst, '-')
		dst = hex.AppendEncode(dst, b[10:])
		return append(dst, '"')
	case avroDuration:
		le := binary.LittleEndian
		return AppendInterval(dst, int64(le.Uint32(b)), int64(le.Uint32(b[4:])), int64(le.Uint32(b[8:]))*1e6)
	}
	return AppendBytes(dst, b)
}

// appendAvroDecimal appends a decimal's big-endian two's-complement
// unscaled value; an empty one is zero. One of up to 8 bytes, nearly every
// decimal, is formatted without big.Int's allocations.
func appendAvroDecimal(dst, b []byte, scale int) []byte {
	if len(b) == 0 {
		b = []byte{0}
	}
	if len(b) > 8 || scale <= 0 {
		return AppendUnscaled(dst, b, scale)
	}
	v := int64(int8(b[0])) // sign-extends
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = -u
	}
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], u, 10)
	if len(digits) <= scale {
		dst = append(dst, '0', '.')
		for range scale - len(digits) {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[:len(digits)-scale]...)
	dst = append(dst, '.')
	return append(dst, digits[len(digits)-scale:]...)
}

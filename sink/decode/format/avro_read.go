package format

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"
)

// The Avro reader: one binary datum, walked over the compiled schema,
// written as JSON straight into dst.

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
	case avroDbzInt, avroDbzJSON, avroBits, avroVarScaleDecimal:
		return r.debezium(dst, n)
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

// debezium appends a value of a Debezium semantic type.
func (r *avroReader) debezium(dst []byte, n *avroNode) ([]byte, error) {
	var err error
	switch n.kind {
	case avroDbzInt:
		var v int64
		if dbzBase[n.dbz] == ctInt32 {
			v, err = r.int()
		} else {
			v, err = r.long()
		}
		if err != nil {
			return dst, err
		}
		dst, err = appendDebeziumInt(dst, n.dbz, v)
	case avroDbzJSON:
		var b []byte
		if b, err = r.bytes(); err != nil {
			return dst, err
		}
		dst, err = appendJSONText(dst, b)
	case avroBits:
		var b []byte
		if b, err = r.bytes(); err != nil {
			return dst, err
		}
		dst, err = appendBits(dst, b, n.size)
	default: // avroVarScaleDecimal
		var scale int64
		var value []byte
		if n.scale == 1 {
			if value, err = r.bytes(); err == nil {
				scale, err = r.int()
			}
		} else if scale, err = r.int(); err == nil {
			value, err = r.bytes()
		}
		if err != nil {
			return dst, err
		}
		dst, err = appendVarScaleDecimal(dst, value, scale)
	}
	if err != nil {
		return dst, Corrupt("avro body: %v", err)
	}
	return dst, nil
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
		u = -u
	}
	var buf [20]byte
	return appendScaled(dst, v < 0, strconv.AppendUint(buf[:0], u, 10), scale)
}

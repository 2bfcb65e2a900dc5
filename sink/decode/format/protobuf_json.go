package format

import (
	"cmp"
	"encoding/binary"
	"math/big"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Protobuf messages to JSON: the message indexes pick the type, dynamicpb
// reads the bytes, and each field is written by its plan.

// AppendJSON implements Decoder.
func (d *protobufDecoder) AppendJSON(dst, body []byte) ([]byte, *Shape, error) {
	p, body, err := d.messageFor(body)
	if err != nil {
		return dst, nil, err
	}
	m := dynamicpb.NewMessage(p.desc)
	if err := d.unmarshal.Unmarshal(body, m); err != nil {
		return dst, nil, Corrupt("protobuf %s: %v", p.desc.FullName(), err)
	}
	out, err := appendPbMessage(dst, m, p)
	if err != nil {
		return dst, nil, err
	}
	return out, p.shape, nil
}

// messageFor reads the message indexes at the start of body and returns
// the plan of the message they name and the rest of body.
func (d *protobufDecoder) messageFor(body []byte) (*pbMessage, []byte, error) {
	count, n := binary.Varint(body)
	if n <= 0 {
		return nil, nil, Corrupt("protobuf message indexes are truncated")
	}
	body = body[n:]
	if count == 0 { // the single byte 0: the first message
		return d.top[0].msg, body, nil
	}
	if count < 0 || count > int64(len(body)) { // each index takes a byte at least
		return nil, nil, Corrupt("protobuf message index count %d is invalid", count)
	}
	nodes := d.top
	var node *pbNode
	for range count {
		idx, n := binary.Varint(body)
		if n <= 0 {
			return nil, nil, Corrupt("protobuf message indexes are truncated")
		}
		body = body[n:]
		if idx < 0 || idx >= int64(len(nodes)) {
			return nil, nil, Invalid("protobuf message index %d does not exist in the schema", idx)
		}
		node = &nodes[idx]
		nodes = node.nested
	}
	return node.msg, body, nil
}

// appendPbMessage writes m as a JSON object of every field of p.
func appendPbMessage(dst []byte, m protoreflect.Message, p *pbMessage) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	for i := range p.fields {
		f := &p.fields[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.key...)
		switch {
		case f.fd.IsMap():
			dst, err = appendPbMap(dst, m.Get(f.fd).Map(), f)
		case f.fd.IsList():
			dst, err = appendPbList(dst, m.Get(f.fd).List(), &f.val)
		case f.nullable && !m.Has(f.fd):
			dst = append(dst, "null"...)
		default:
			dst, err = appendPbValue(dst, m.Get(f.fd), &f.val)
		}
		if err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendPbList(dst []byte, l protoreflect.List, t *pbType) ([]byte, error) {
	var err error
	dst = append(dst, '[')
	for i := range l.Len() {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = appendPbValue(dst, l.Get(i), t); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

// appendPbMap writes a map as a JSON object with its keys as strings, in
// key order so that one message always gives the same text.
func appendPbMap(dst []byte, m protoreflect.Map, f *pbField) ([]byte, error) {
	keys := make([]protoreflect.MapKey, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, comparePbKeys)
	var err error
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch v := k.Interface().(type) {
		case string:
			if dst, err = AppendString(dst, v); err != nil {
				return dst, err
			}
		default:
			dst = append(dst, '"')
			dst = append(dst, k.String()...) // a number or true/false
			dst = append(dst, '"')
		}
		dst = append(dst, ':')
		if dst, err = appendPbValue(dst, m.Get(k), &f.val); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// comparePbKeys orders the keys of one map, which are all of one kind.
func comparePbKeys(a, b protoreflect.MapKey) int {
	switch x := a.Interface().(type) {
	case string:
		return cmp.Compare(x, b.String())
	case bool:
		return cmp.Compare(boolInt(x), boolInt(b.Bool()))
	case int32, int64:
		return cmp.Compare(a.Int(), b.Int())
	default:
		return cmp.Compare(a.Uint(), b.Uint())
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// appendPbValue writes one value (not a list or map) of type t.
func appendPbValue(dst []byte, v protoreflect.Value, t *pbType) ([]byte, error) {
	switch t.kind {
	case protoreflect.BoolKind:
		return AppendBool(dst, v.Bool()), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return AppendInt(dst, v.Int()), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return AppendUint(dst, v.Uint()), nil
	case protoreflect.FloatKind:
		return AppendFloat(dst, v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return AppendFloat(dst, v.Float(), 64), nil
	case protoreflect.StringKind:
		return AppendString(dst, v.String())
	case protoreflect.BytesKind:
		return AppendBytes(dst, v.Bytes()), nil
	case protoreflect.EnumKind:
		n := v.Enum()
		if ev := t.enum.ByNumber(n); ev != nil {
			return AppendString(dst, string(ev.Name()))
		}
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, int64(n), 10)
		return append(dst, '"'), nil
	}
	m := v.Message()
	switch t.wk {
	case pbTimestamp:
		return appendPbTimestamp(dst, m)
	case pbDuration:
		return appendPbDuration(dst, m)
	case pbWrapper:
		return appendPbValue(dst, m.Get(t.inner), t.innerType)
	}
	return appendPbMessage(dst, m, t.msg)
}

// The range of google.protobuf.Timestamp and Duration, as timestamp.proto
// and duration.proto give it.
const (
	pbMinTimestamp = -62135596800 // 0001-01-01T00:00:00Z
	pbMaxTimestamp = 253402300799 // 9999-12-31T23:59:59Z
	pbMaxDuration  = 315576000000 // 10000 years
)

func appendPbTimestamp(dst []byte, m protoreflect.Message) ([]byte, error) {
	fds := m.Descriptor().Fields()
	secs := m.Get(fds.ByNumber(1)).Int()
	nanos := m.Get(fds.ByNumber(2)).Int()
	if secs < pbMinTimestamp || secs > pbMaxTimestamp || nanos < 0 || nanos > 999_999_999 {
		return dst, Corrupt("a google.protobuf.Timestamp is out of range")
	}
	return AppendTimestamp(dst, time.Unix(secs, nanos).UTC()), nil
}

func appendPbDuration(dst []byte, m protoreflect.Message) ([]byte, error) {
	fds := m.Descriptor().Fields()
	secs := m.Get(fds.ByNumber(1)).Int()
	nanos := m.Get(fds.ByNumber(2)).Int()
	if secs < -pbMaxDuration || secs > pbMaxDuration || nanos < -999_999_999 || nanos > 999_999_999 ||
		(secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		return dst, Corrupt("a google.protobuf.Duration is out of range")
	}
	const maxSecs = (1<<63 - 1) / 1_000_000_000 // whole seconds whose nanoseconds fit an int64
	if secs > -maxSecs && secs < maxSecs {
		return AppendInterval(dst, 0, 0, secs*1e9+nanos), nil
	}
	total := new(big.Int).Mul(big.NewInt(secs), big.NewInt(1e9))
	total.Add(total, big.NewInt(nanos))
	dst = append(dst, `"P0M0DT`...)
	dst = AppendDecimal(dst, total, 9)
	return append(dst, 'S', '"'), nil
}

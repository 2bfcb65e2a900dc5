package format

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Protobuf in Confluent's wire format: the body starts with the message
// indexes that pick the message type from the schema's file (a zigzag
// varint count, then that many zigzag varint indexes: a top-level message,
// then a message nested in it, and so on; the single byte 0 stands for
// [0], the first message), then the message itself.
//
// Every field of the message is written, as Kafka Connect's
// ProtobufConverter does: a scalar without presence at its default when
// unset, a field with presence (a message, a proto3 optional or proto2
// optional scalar, a oneof member) as null when unset. Field names are the
// .proto names, not json_name.

// protobufRootFile is the name the registry's schema text is compiled
// under when no reference already uses it.
const protobufRootFile = "sinkworker/registered.proto"

// CompileProtobuf compiles s for reading. s.Text, and the text of each of
// its references, is either a .proto file or a serialized
// google.protobuf.FileDescriptorProto in standard base64, the form
// Confluent's Python ProtobufSerializer registers (see
// isProtobufDescriptor). Imports are resolved from s.References (by import
// path, recursively) and from the well-known types
// (google/protobuf/*.proto), which registries do not hold as references.
// An error wraps ErrSchema.
func CompileProtobuf(s Schema) (Decoder, error) {
	files := map[string]string{}
	if err := addProtobufRefs(files, s.References); err != nil {
		return nil, err
	}
	root := protobufRootFile
	for i := 1; ; i++ {
		if _, taken := files[root]; !taken {
			break
		}
		root = fmt.Sprintf("sinkworker/registered%d.proto", i)
	}
	files[root] = s.Text
	found := make(map[string]protocompile.SearchResult, len(files))
	for path, text := range files {
		r, err := protobufSearchResult(path, text)
		if err != nil {
			return nil, err
		}
		found[path] = r
	}
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(protocompile.ResolverFunc(
			func(path string) (protocompile.SearchResult, error) {
				if r, ok := found[path]; ok {
					return r, nil
				}
				return protocompile.SearchResult{}, protoregistry.NotFound
			})),
		MaxParallelism: 1,
	}
	compiled, err := c.Compile(context.Background(), root)
	if err != nil {
		return nil, Invalid("compile protobuf schema: %v", err)
	}
	fd := compiled[0]
	if fd.Messages().Len() == 0 {
		return nil, Invalid("protobuf schema declares no message")
	}
	b := pbBuilder{plans: map[protoreflect.FullName]*pbMessage{}}
	d := &protobufDecoder{file: fd, top: b.nodes(fd.Messages())}
	// A fresh message needs no Reset (Merge), and the check for required
	// fields walks the whole message: skip it where there are none.
	d.unmarshal = proto.UnmarshalOptions{DiscardUnknown: true, Merge: true, AllowPartial: !b.required}
	return d, nil
}

// protobufSearchResult is the file at path, whose registered text is
// text, for the compiler: a descriptor to link, or source to parse.
func protobufSearchResult(path, text string) (protocompile.SearchResult, error) {
	raw, ok := isProtobufDescriptor(text)
	if !ok {
		return protocompile.SearchResult{Source: strings.NewReader(text)}, nil
	}
	fdp := &descriptorpb.FileDescriptorProto{}
	if err := proto.Unmarshal(raw, fdp); err != nil {
		return protocompile.SearchResult{}, Invalid("protobuf schema %q is base64 but not a FileDescriptorProto: %v", path, err)
	}
	// The compiler asks for a file by the path that imports it (the
	// reference's name); the root's own name is not used by anyone.
	fdp.Name = proto.String(path)
	setPbJSONNames(fdp.GetMessageType())
	return protocompile.SearchResult{Proto: fdp}, nil
}

// setPbJSONNames gives every field of msgs without a json_name its
// default one, as protoc writes it. A descriptor built by hand (as
// Python's confluent-kafka users do) leaves it out, and the compiler
// takes a missing one for a custom "" that all fields then share. The
// decoder writes .proto names, so this changes no output.
func setPbJSONNames(msgs []*descriptorpb.DescriptorProto) {
	for _, m := range msgs {
		for _, f := range m.GetField() {
			if f.JsonName == nil {
				f.JsonName = proto.String(pbDefaultJSONName(f.GetName()))
			}
		}
		setPbJSONNames(m.GetNestedType())
	}
}

// pbDefaultJSONName is protoc's default JSON name of a field: its name
// with each underscore dropped and the letter after it upper-cased.
func pbDefaultJSONName(name string) string {
	var b strings.Builder
	upper := false
	for _, r := range name {
		switch {
		case r == '_':
			upper = true
		case upper:
			b.WriteRune(unicode.ToUpper(r))
			upper = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isProtobufDescriptor reports whether text is a serialized
// FileDescriptorProto rather than .proto source, and returns its bytes:
// it is when text, without surrounding white space, is non-empty standard
// base64 (padded; line breaks allowed). No .proto file that declares
// anything is valid base64, since every statement ends in ';' or '}',
// neither of which base64 uses; a text of white space and comments alone
// declares nothing either way.
func isProtobufDescriptor(text string) ([]byte, bool) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	return raw, err == nil
}

// addProtobufRefs adds refs and their own references to files by import
// path. One path with two different texts is an error.
func addProtobufRefs(files map[string]string, refs map[string]Schema) error {
	for path, ref := range refs {
		if text, seen := files[path]; seen {
			if text != ref.Text {
				return Invalid("protobuf import %q has two different texts", path)
			}
			continue
		}
		files[path] = ref.Text
		if err := addProtobufRefs(files, ref.References); err != nil {
			return err
		}
	}
	return nil
}

// protobufDecoder reads bodies of one compiled .proto file. Everything in
// it is built by CompileProtobuf and only read after, so it is safe for
// concurrent use.
type protobufDecoder struct {
	file      protoreflect.FileDescriptor
	top       []pbNode // the file's top-level messages, by index
	unmarshal proto.UnmarshalOptions
}

// pbNode is a message the message indexes can name, and its nested ones.
type pbNode struct {
	msg    *pbMessage
	nested []pbNode
}

// pbMessage is how one message type is written, built once per type.
type pbMessage struct {
	desc   protoreflect.MessageDescriptor
	shape  *Shape
	fields []pbField
}

// pbField is one field of a message: its JSON key and how its value is
// written.
type pbField struct {
	fd  protoreflect.FieldDescriptor
	key []byte // the JSON key and its colon: "name":
	// nullable is set for a field with presence: null when unset.
	nullable bool
	val      pbType // a singular field's value, a list's elements, a map's values
}

// pbWellKnown names the messages written as a scalar rather than an object.
type pbWellKnown uint8

const (
	pbPlain pbWellKnown = iota
	pbTimestamp
	pbDuration
	pbWrapper
)

// pbType is how one value (not a list or map) is written.
type pbType struct {
	kind protoreflect.Kind
	wk   pbWellKnown
	// enum is the enum's values for an EnumKind.
	enum protoreflect.EnumValueDescriptors
	// msg is the plan of a plain message.
	msg *pbMessage
	// inner is a wrapper's value field and its type.
	inner     protoreflect.FieldDescriptor
	innerType *pbType
}

// pbBuilder builds the plans of the message types a file reaches.
type pbBuilder struct {
	plans map[protoreflect.FullName]*pbMessage
	// required is set once a message with a proto2 required field is seen.
	required bool
}

func (b *pbBuilder) nodes(msgs protoreflect.MessageDescriptors) []pbNode {
	nodes := make([]pbNode, msgs.Len())
	for i := range nodes {
		md := msgs.Get(i)
		nodes[i] = pbNode{msg: b.message(md), nested: b.nodes(md.Messages())}
	}
	return nodes
}

// message returns the plan of md, building it (and those of the messages
// its fields hold) the first time. A recursive type gets its own plan back
// while that is still being built, which is complete before it is used.
func (b *pbBuilder) message(md protoreflect.MessageDescriptor) *pbMessage {
	if p, ok := b.plans[md.FullName()]; ok {
		return p
	}
	p := &pbMessage{desc: md, shape: &Shape{}}
	b.plans[md.FullName()] = p
	b.required = b.required || md.RequiredNumbers().Len() > 0
	fds := md.Fields()
	p.fields = make([]pbField, fds.Len())
	for i := range p.fields {
		fd := fds.Get(i)
		key, _ := AppendString(nil, string(fd.Name())) // a proto identifier is ASCII
		f := pbField{
			fd:       fd,
			key:      append(key, ':'),
			nullable: !fd.IsList() && !fd.IsMap() && fd.HasPresence() && fd.Cardinality() != protoreflect.Required,
		}
		vd := fd
		if fd.IsMap() {
			vd = fd.MapValue()
		}
		f.val = b.valueType(vd)
		p.fields[i] = f
		p.shape.Columns = append(p.shape.Columns, Column{
			Name:     string(fd.Name()),
			Type:     pbColumnType(fd, &f.val),
			Nullable: f.nullable,
		})
	}
	return p
}

func (b *pbBuilder) valueType(fd protoreflect.FieldDescriptor) pbType {
	t := pbType{kind: fd.Kind()}
	switch fd.Kind() {
	case protoreflect.EnumKind:
		t.enum = fd.Enum().Values()
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		switch md.FullName() {
		case "google.protobuf.Timestamp":
			t.wk = pbTimestamp
		case "google.protobuf.Duration":
			t.wk = pbDuration
		case "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
			"google.protobuf.Int64Value", "google.protobuf.UInt64Value",
			"google.protobuf.Int32Value", "google.protobuf.UInt32Value",
			"google.protobuf.BoolValue", "google.protobuf.StringValue",
			"google.protobuf.BytesValue":
			t.wk = pbWrapper
			t.inner = md.Fields().ByNumber(1)
			inner := b.valueType(t.inner)
			t.innerType = &inner
		default:
			t.msg = b.message(md)
		}
	}
	return t
}

// pbColumnType is the PostgreSQL type of field fd, whose values are of
// type t.
func pbColumnType(fd protoreflect.FieldDescriptor, t *pbType) string {
	if fd.IsMap() {
		return "jsonb"
	}
	typ := pbValueColumnType(t)
	if fd.IsList() {
		if t.kind == protoreflect.MessageKind || t.kind == protoreflect.GroupKind {
			return "jsonb"
		}
		return typ + "[]"
	}
	return typ
}

func pbValueColumnType(t *pbType) string {
	switch t.wk {
	case pbTimestamp:
		return "timestamptz"
	case pbDuration:
		return "interval"
	case pbWrapper:
		return pbValueColumnType(t.innerType)
	}
	switch t.kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "integer"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "bigint"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "numeric(20,0)"
	case protoreflect.FloatKind:
		return "real"
	case protoreflect.DoubleKind:
		return "double precision"
	case protoreflect.BoolKind:
		return "boolean"
	case protoreflect.StringKind, protoreflect.EnumKind:
		return "text"
	case protoreflect.BytesKind:
		return "bytea"
	}
	return "jsonb"
}

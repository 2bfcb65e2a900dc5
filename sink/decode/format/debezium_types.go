package format

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Debezium's semantic types: a Connect schema name (in Avro, the type's
// "connect.name") on a plain int32, int64, string, bytes or struct says
// what the value means. Both the Connect JSON and the Avro decoder map
// them here, to the text PostgreSQL's input takes for the column type
// pgType names.

// debeziumType is one Debezium semantic type; dbzNone is none.
type debeziumType uint8

const (
	dbzNone            debeziumType = iota
	dbzDate                         // int32 days since 1970-01-01
	dbzTime                         // int32 millis of the day
	dbzMicroTime                    // int64 micros of the day
	dbzNanoTime                     // int64 nanos of the day
	dbzTimestamp                    // int64 millis since the epoch, no zone
	dbzMicroTimestamp               // int64 micros since the epoch, no zone
	dbzNanoTimestamp                // int64 nanos since the epoch, no zone
	dbzMicroDuration                // int64 micros
	dbzZonedTimestamp               // ISO-8601 text with an offset
	dbzZonedTime                    // ISO-8601 time with an offset
	dbzInterval                     // ISO-8601 duration text
	dbzJSON                         // JSON text
	dbzUUID                         // UUID text
	dbzEnum                         // an enum's label
	dbzEnumSet                      // a set's labels, comma separated
	dbzXML                          // XML text
	dbzBits                         // little-endian bits, parameter "length"
	dbzVarScaleDecimal              // struct {scale int32, value bytes}
)

var debeziumTypes = map[string]debeziumType{
	"io.debezium.time.Date":                 dbzDate,
	"io.debezium.time.Time":                 dbzTime,
	"io.debezium.time.MicroTime":            dbzMicroTime,
	"io.debezium.time.NanoTime":             dbzNanoTime,
	"io.debezium.time.Timestamp":            dbzTimestamp,
	"io.debezium.time.MicroTimestamp":       dbzMicroTimestamp,
	"io.debezium.time.NanoTimestamp":        dbzNanoTimestamp,
	"io.debezium.time.MicroDuration":        dbzMicroDuration,
	"io.debezium.time.ZonedTimestamp":       dbzZonedTimestamp,
	"io.debezium.time.ZonedTime":            dbzZonedTime,
	"io.debezium.time.Interval":             dbzInterval,
	"io.debezium.data.Json":                 dbzJSON,
	"io.debezium.data.Uuid":                 dbzUUID,
	"io.debezium.data.Enum":                 dbzEnum,
	"io.debezium.data.EnumSet":              dbzEnumSet,
	"io.debezium.data.Xml":                  dbzXML,
	"io.debezium.data.Bits":                 dbzBits,
	"io.debezium.data.VariableScaleDecimal": dbzVarScaleDecimal,
}

// dbzBase is the Connect type each semantic type rides on.
var dbzBase = [...]connectType{
	dbzDate: ctInt32, dbzTime: ctInt32,
	dbzMicroTime: ctInt64, dbzNanoTime: ctInt64, dbzTimestamp: ctInt64, dbzMicroTimestamp: ctInt64,
	dbzNanoTimestamp: ctInt64, dbzMicroDuration: ctInt64,
	dbzZonedTimestamp: ctString, dbzZonedTime: ctString, dbzInterval: ctString, dbzJSON: ctString,
	dbzUUID: ctString, dbzEnum: ctString, dbzEnumSet: ctString, dbzXML: ctString,
	dbzBits: ctBytes, dbzVarScaleDecimal: ctStruct,
}

var dbzPGTypes = [...]string{
	dbzDate: "date", dbzTime: "time", dbzMicroTime: "time", dbzNanoTime: "time",
	dbzTimestamp: "timestamp", dbzMicroTimestamp: "timestamp", dbzNanoTimestamp: "timestamp",
	dbzMicroDuration: "interval", dbzZonedTimestamp: "timestamptz", dbzZonedTime: "timetz",
	dbzInterval: "interval", dbzJSON: "jsonb", dbzUUID: "uuid", dbzEnum: "text", dbzEnumSet: "text",
	dbzXML: "xml", dbzBits: "varbit", dbzVarScaleDecimal: "numeric",
}

// pgType is the column type of the semantic type.
func (k debeziumType) pgType() string { return dbzPGTypes[k] }

// isInt is set for the types carried by an integer.
func (k debeziumType) isInt() bool { return k >= dbzDate && k <= dbzMicroDuration }

// maxBits is PostgreSQL's longest bit string; Debezium gives a varbit
// without a limit as length 2147483647.
const maxBits = 83886080

// Errors of a value that PostgreSQL could not take as its type; they
// name no data. Each decoder wraps them in its own class.
var (
	errDbzTimeOfDay   = errors.New("time of day outside 00:00-24:00")
	errDbzTimeRange   = errors.New("date or timestamp outside PostgreSQL's range")
	errDbzJSON        = errors.New("io.debezium.data.Json value is not JSON")
	errDbzBitsLength  = errors.New("io.debezium.data.Bits value longer than its length")
	errDbzDecimalSize = errors.New("io.debezium.data.VariableScaleDecimal scale out of range")
)

// appendDebeziumInt appends v, a value of the integer semantic type k.
func appendDebeziumInt(dst []byte, k debeziumType, v int64) ([]byte, error) {
	switch k {
	case dbzDate:
		switch v {
		case math.MaxInt32:
			return append(dst, `"infinity"`...), nil
		case math.MinInt32:
			return append(dst, `"-infinity"`...), nil
		}
		return appendLocal(dst, time.Unix(v*86400, 0).UTC(), false)
	case dbzTime:
		return appendDayTime(dst, v, 86_400_000, int64(time.Millisecond))
	case dbzMicroTime:
		return appendDayTime(dst, v, 86_400_000_000, int64(time.Microsecond))
	case dbzNanoTime:
		return appendDayTime(dst, v, 86_400_000_000_000, 1)
	case dbzTimestamp, dbzMicroTimestamp, dbzNanoTimestamp:
		switch v { // Debezium's PostgreSQL infinities
		case math.MaxInt64:
			return append(dst, `"infinity"`...), nil
		case math.MinInt64:
			return append(dst, `"-infinity"`...), nil
		}
		t := time.Unix(0, v)
		switch k {
		case dbzTimestamp:
			t = time.UnixMilli(v)
		case dbzMicroTimestamp:
			t = time.UnixMicro(v)
		}
		return appendLocal(dst, t.UTC(), true)
	case dbzMicroDuration:
		if v > math.MinInt64/1000 && v < math.MaxInt64/1000 {
			return AppendInterval(dst, 0, 0, v*1000), nil
		}
		dst = append(dst, `"P0M0DT`...)
		dst = AppendDecimal(dst, big.NewInt(v), 6)
		return append(dst, 'S', '"'), nil
	}
	return AppendInt(dst, v), nil
}

// appendDayTime appends v units (of unit nanoseconds) after midnight,
// day units being 24:00:00, which PostgreSQL's time takes. Every
// fractional digit is kept; PostgreSQL rounds to microseconds.
func appendDayTime(dst []byte, v, day, unit int64) ([]byte, error) {
	switch {
	case v < 0 || v > day:
		return dst, errDbzTimeOfDay
	case v == day:
		return append(dst, `"24:00:00"`...), nil
	}
	dst = append(dst, '"')
	dst = time.Unix(0, v*unit).UTC().AppendFormat(dst, "15:04:05.999999999")
	return append(dst, '"'), nil
}

// appendLocal appends t's wall clock in UTC without an offset
// ("2024-02-29" or "2024-02-29T10:15:30.5"), years before 1 as PostgreSQL
// writes them ("0044-03-15 BC"), within PostgreSQL's range (4713 BC to
// 294276 AD).
func appendLocal(dst []byte, t time.Time, clock bool) ([]byte, error) {
	y := t.Year()
	if y < -4712 || y > 294276 {
		return dst, errDbzTimeRange
	}
	bc := y <= 0
	if bc {
		y = 1 - y // year 0 is 1 BC
	}
	dst = append(dst, '"')
	for d := 1000; d > 1 && y < d; d /= 10 {
		dst = append(dst, '0')
	}
	dst = strconv.AppendInt(dst, int64(y), 10)
	if clock {
		dst = t.AppendFormat(dst, "-01-02T15:04:05.999999999")
	} else {
		dst = t.AppendFormat(dst, "-01-02")
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return append(dst, '"'), nil
}

// appendJSONText appends text, a Json value's JSON, as itself: the value
// lands as JSON, not as a string holding it.
func appendJSONText(dst []byte, text []byte) ([]byte, error) {
	if !utf8.Valid(text) || !json.Valid(text) {
		return dst, errDbzJSON
	}
	return append(dst, text...), nil
}

// appendBits appends Debezium's Bits (bit i in b[i/8] at 1<<(i%8), as
// java.util.BitSet has it) as bit varying input, most significant bit
// first: length digits, or for a length over PostgreSQL's limit (a
// varbit without one) as many as the highest set bit needs.
func appendBits(dst, b []byte, length int) ([]byte, error) {
	high := len(b) * 8
	for high > 0 && b[(high-1)/8]&(1<<((high-1)%8)) == 0 {
		high--
	}
	switch {
	case length <= 0 || length > maxBits:
		length = max(high, 1)
	case high > length:
		return dst, errDbzBitsLength
	}
	dst = append(dst, '"')
	for i := length - 1; i >= 0; i-- {
		bit := byte('0')
		if i < high && b[i/8]&(1<<(i%8)) != 0 {
			bit = '1'
		}
		dst = append(dst, bit)
	}
	return append(dst, '"'), nil
}

// appendVarScaleDecimal appends a VariableScaleDecimal's value: unscaled
// big-endian two's-complement bytes, scaled by scale within numeric's
// limits.
func appendVarScaleDecimal(dst, unscaled []byte, scale int64) ([]byte, error) {
	if scale < -131072 || scale > 16383 {
		return dst, errDbzDecimalSize
	}
	if len(unscaled) == 0 {
		unscaled = []byte{0}
	}
	return AppendUnscaled(dst, unscaled, int(scale)), nil
}

// sourceColumn is the source column type Debezium propagates
// (column.propagate.source.type) in a schema's parameters.
type sourceColumn struct {
	typ           string // "__debezium.source.column.type", e.g. "VARCHAR", "_INT4"
	length, scale int    // -1 when not given
}

// sourceParams returns the source column in params (a parameter by name,
// "" when absent), or false.
func sourceParams(param func(string) string) (sourceColumn, bool) {
	s := sourceColumn{typ: param("__debezium.source.column.type"), length: -1, scale: -1}
	if s.typ == "" {
		return s, false
	}
	if n, err := strconv.Atoi(param("__debezium.source.column.length")); err == nil {
		s.length = n
	}
	if n, err := strconv.Atoi(param("__debezium.source.column.scale")); err == nil {
		s.scale = n
	}
	return s, true
}

// sourceType is a PostgreSQL source type: the target type's name and the
// type-map types (without modifiers) whose JSON it takes as written.
type sourceType struct {
	name string
	fits []string
}

var (
	fitsInt     = []string{"smallint", "integer", "bigint"}
	fitsNumeric = []string{"numeric", "smallint", "integer", "bigint", "real", "double precision", "text"}
	fitsFloat   = []string{"real", "double precision"}
	fitsText    = []string{"text"}
)

var sourceTypes = map[string]sourceType{
	"INT2": {"smallint", fitsInt[:1]}, "SMALLINT": {"smallint", fitsInt[:1]}, "SMALLSERIAL": {"smallint", fitsInt[:1]},
	"INT4": {"integer", fitsInt[:2]}, "INT": {"integer", fitsInt[:2]}, "INTEGER": {"integer", fitsInt[:2]}, "SERIAL": {"integer", fitsInt[:2]},
	"INT8": {"bigint", fitsInt}, "BIGINT": {"bigint", fitsInt}, "BIGSERIAL": {"bigint", fitsInt},
	"NUMERIC": {"numeric", fitsNumeric}, "DECIMAL": {"numeric", fitsNumeric},
	"FLOAT4": {"real", fitsFloat[:1]}, "REAL": {"real", fitsFloat[:1]},
	"FLOAT8": {"double precision", fitsFloat}, "DOUBLE PRECISION": {"double precision", fitsFloat},
	"BOOL": {"boolean", []string{"boolean"}}, "BOOLEAN": {"boolean", []string{"boolean"}},
	"TEXT": {"text", fitsText}, "VARCHAR": {"varchar", fitsText}, "BPCHAR": {"bpchar", fitsText}, "CHAR": {"bpchar", fitsText},
	"NAME": {"name", fitsText}, "CITEXT": {"text", fitsText},
	"INET": {"inet", fitsText}, "CIDR": {"cidr", fitsText}, "MACADDR": {"macaddr", fitsText}, "MACADDR8": {"macaddr8", fitsText},
	"DATE": {"date", []string{"date"}},
	"TIME": {"time", []string{"time"}}, "TIMETZ": {"timetz", []string{"timetz"}},
	"TIMESTAMP": {"timestamp", []string{"timestamp"}}, "TIMESTAMPTZ": {"timestamptz", []string{"timestamptz"}},
	"UUID": {"uuid", []string{"uuid", "text"}},
	"JSON": {"json", []string{"jsonb"}}, "JSONB": {"jsonb", []string{"jsonb"}},
	"XML":      {"xml", []string{"xml", "text"}},
	"BYTEA":    {"bytea", []string{"bytea"}},
	"INTERVAL": {"interval", []string{"interval"}},
	"BIT":      {"bit", []string{"varbit"}}, "VARBIT": {"varbit", []string{"varbit"}},
}

// columnType is the column type for src where it takes the values the
// type map's type (mapped) gives, else mapped. Lengths and precisions
// outside PostgreSQL's limits (Debezium's 2147483647 for "none") are left
// off.
func (src sourceColumn) columnType(mapped string) string {
	name, array := strings.ToUpper(src.typ), false
	if strings.HasPrefix(name, "_") {
		name, array = name[1:], true
	}
	base := mapped
	if array {
		var ok bool
		if base, ok = strings.CutSuffix(mapped, "[]"); !ok {
			return mapped
		}
	}
	if i := strings.IndexByte(base, '('); i >= 0 {
		base = base[:i]
	}
	st, ok := sourceTypes[name]
	if !ok || !fitsOne(st.fits, base) {
		return mapped
	}
	typ := st.name
	switch name {
	case "VARCHAR", "BPCHAR", "CHAR":
		if src.length >= 1 && src.length <= 10485760 {
			typ += "(" + strconv.Itoa(src.length) + ")" // bpchar alone has no limit, char alone is char(1)
		}
	case "BIT", "VARBIT":
		if src.length >= 1 && src.length <= maxBits {
			typ += "(" + strconv.Itoa(src.length) + ")"
		} else if name == "BIT" {
			typ = "varbit"
		}
	case "NUMERIC", "DECIMAL":
		if src.length >= 1 && src.length <= 1000 && src.scale >= 0 && src.scale <= src.length {
			typ += "(" + strconv.Itoa(src.length) + "," + strconv.Itoa(src.scale) + ")"
		}
	}
	if array {
		typ += "[]"
	}
	return typ
}

func fitsOne(fits []string, base string) bool {
	for _, f := range fits {
		if f == base {
			return true
		}
	}
	return false
}

package format

import (
	"encoding/hex"
	"math"
	"math/big"
	"strconv"
	"time"
	"unicode/utf8"
)

// The Append functions write one value as JSON text that PostgreSQL reads
// back exactly, into a jsonb value or, through jsonb_populate_record, into
// a column of the type the README's type map gives.

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 is an error
// (ErrCorrupt): PostgreSQL text cannot hold it, and replacing it would
// change the value. A NUL character is kept (as \u0000); package decode
// rejects the record, since jsonb cannot store it.
func AppendString(dst []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return dst, Corrupt("a string is not valid UTF-8")
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), nil
}

// AppendBytes appends b as bytea's hex input text: "\\x0a0b".
func AppendBytes(dst, b []byte) []byte {
	dst = append(dst, `"\\x`...)
	dst = hex.AppendEncode(dst, b)
	return append(dst, '"')
}

// AppendInt appends an integer.
func AppendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }

// AppendUint appends an unsigned integer (a uint64 above int64's range
// fits PostgreSQL's numeric).
func AppendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

// AppendFloat appends a float of bits 32 or 64 in the shortest form that
// reads back as the same value. NaN and the infinities, which JSON has no
// number for, are the strings PostgreSQL's float input takes: "NaN",
// "Infinity", "-Infinity".
func AppendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// AppendBool appends true or false.
func AppendBool(dst []byte, v bool) []byte { return strconv.AppendBool(dst, v) }

// AppendDecimal appends unscaled * 10^-scale as an exact JSON number
// (scale may be negative).
func AppendDecimal(dst []byte, unscaled *big.Int, scale int) []byte {
	if scale <= 0 {
		dst = unscaled.Append(dst, 10)
		for range -scale {
			if unscaled.Sign() == 0 {
				break
			}
			dst = append(dst, '0')
		}
		return dst
	}
	return appendScaled(dst, unscaled.Sign() < 0, new(big.Int).Abs(unscaled).Append(nil, 10), scale)
}

// appendScaled appends the decimal digits of an unscaled magnitude, with
// a '-' when neg, and a point scale digits from the right (scale > 0).
func appendScaled(dst []byte, neg bool, digits []byte, scale int) []byte {
	if neg {
		dst = append(dst, '-')
	}
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

// AppendUnscaled reads b as a big-endian two's-complement integer (Avro's
// and Connect's decimal bytes) and appends it scaled by scale.
func AppendUnscaled(dst, b []byte, scale int) []byte {
	v := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return AppendDecimal(dst, v, scale)
}

// AppendTimestamp appends t as RFC 3339 text with its zone offset and
// every non-zero fractional digit (timestamptz input; timestamp input
// ignores the offset, so local timestamps are given in UTC).
func AppendTimestamp(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// AppendDate appends the date days after 1970-01-01 as "YYYY-MM-DD".
func AppendDate(dst []byte, days int64) []byte {
	dst = append(dst, '"')
	dst = time.Unix(days*86400, 0).UTC().AppendFormat(dst, time.DateOnly)
	return append(dst, '"')
}

// AppendTimeOfDay appends micros after midnight as "HH:MM:SS.ffffff".
func AppendTimeOfDay(dst []byte, micros int64) []byte {
	dst = append(dst, '"')
	dst = time.UnixMicro(micros).UTC().AppendFormat(dst, "15:04:05.999999")
	return append(dst, '"')
}

// AppendInterval appends an interval in ISO 8601 form, which PostgreSQL's
// interval input takes: "P<months>M<days>DT<seconds>S", seconds exact to
// the nanosecond.
func AppendInterval(dst []byte, months, days int64, nanos int64) []byte {
	dst = append(dst, `"P`...)
	dst = strconv.AppendInt(dst, months, 10)
	dst = append(dst, 'M')
	dst = strconv.AppendInt(dst, days, 10)
	dst = append(dst, 'D', 'T')
	dst = AppendDecimal(dst, big.NewInt(nanos), 9)
	return append(dst, 'S', '"')
}

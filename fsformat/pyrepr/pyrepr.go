// Package pyrepr renders values the way Python 3 prints them, so zodbctl's
// text output can be byte-identical to the ZODB scripts: repr() of bytes and
// of str, and repr()/str() of floats.
//
// The Append* forms append to a caller's buffer and allocate nothing, for use
// in per-record output loops.
package pyrepr

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bytes returns repr(b) for a Python bytes value: b'...'.
func Bytes(b []byte) string { return string(AppendBytes(nil, b)) }

// AppendBytes appends repr(b) of a bytes value.
func AppendBytes(dst, b []byte) []byte {
	dst = append(dst, 'b')
	return appendQuoted(dst, b)
}

// Str returns repr(s) for a Python str whose characters are the bytes of s
// (ASCII in practice; other bytes are escaped as \xNN).
func Str(s []byte) string { return string(AppendStr(nil, s)) }

// AppendStr appends repr of a str made of the given bytes.
func AppendStr(dst, s []byte) []byte { return appendQuoted(dst, s) }

func appendQuoted(dst, b []byte) []byte {
	quote := byte('\'')
	hasSingle, hasDouble := false, false
	for _, c := range b {
		if c == '\'' {
			hasSingle = true
		} else if c == '"' {
			hasDouble = true
		}
	}
	if hasSingle && !hasDouble {
		quote = '"'
	}
	const hexdigits = "0123456789abcdef"
	dst = append(dst, quote)
	for _, c := range b {
		switch {
		case c == quote || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c < 0x20 || c >= 0x7f:
			dst = append(dst, '\\', 'x', hexdigits[c>>4], hexdigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, quote)
}

// UnicodeStr returns repr(s) for a Python 3 str holding UTF-8 text:
// printable non-ASCII characters are kept, control characters escaped.
func UnicodeStr(s string) string {
	if !utf8.ValidString(s) {
		return Str([]byte(s))
	}
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var sb strings.Builder
	sb.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			sb.WriteString(`\x`)
			sb.WriteString(hex2(int(r)))
		case r >= 0x80 && r < 0xa0:
			sb.WriteString(`\x`)
			sb.WriteString(hex2(int(r)))
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte(quote)
	return sb.String()
}

func hex2(v int) string {
	s := strconv.FormatInt(int64(v), 16)
	if len(s) < 2 {
		s = "0" + s
	}
	return s
}

// Float returns Python's repr(x) / str(x): the shortest round-tripping
// digits, fixed notation when the decimal exponent is in [-4, 16) (with
// ".0" when there is no fraction), scientific otherwise ("1e+16", "1.5e-05").
func Float(x float64) string { return string(AppendFloat(nil, x)) }

// AppendFloat appends Float(x).
func AppendFloat(dst []byte, x float64) []byte {
	switch {
	case x != x:
		return append(dst, "nan"...)
	case x > 1.7976931348623157e308:
		return append(dst, "inf"...)
	case x < -1.7976931348623157e308:
		return append(dst, "-inf"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], x, 'e', -1, 64)
	neg := false
	if e[0] == '-' {
		neg = true
		e = e[1:]
	}
	// e is d[.ddd]e±XX
	epos := strings.IndexByte(string(e), 'e')
	mant := e[:epos]
	exp, _ := strconv.Atoi(string(e[epos+1:]))
	digits := make([]byte, 0, 20)
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	if neg {
		dst = append(dst, '-')
	}
	if exp >= -4 && exp < 16 {
		if exp >= 0 {
			intPart := exp + 1
			if len(digits) <= intPart {
				dst = append(dst, digits...)
				for i := len(digits); i < intPart; i++ {
					dst = append(dst, '0')
				}
				return append(dst, '.', '0')
			}
			dst = append(dst, digits[:intPart]...)
			dst = append(dst, '.')
			return append(dst, digits[intPart:]...)
		}
		dst = append(dst, '0', '.')
		for i := 0; i < -exp-1; i++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[0])
	if len(digits) > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	dst = append(dst, 'e')
	if exp < 0 {
		dst = append(dst, '-')
		exp = -exp
	} else {
		dst = append(dst, '+')
	}
	if exp < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(exp), 10)
}

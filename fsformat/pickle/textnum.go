package pickle

import (
	"errors"
	"math/big"
	"strconv"
)

// The text opcodes of protocol 0 (INT, LONG, FLOAT, PUT, GET) are parsed the
// way CPython's C unpickler parses them: with C string functions, so the
// argument ends at the first NUL byte, and with strtol / PyLong_FromString /
// PyOS_string_to_double rules (leading zeros are octal for INT, underscores
// and surrounding whitespace are accepted by the int fallbacks, a float
// overflow is an error).

var errIntLiteral = errors.New("could not convert string to int")

// cString returns line up to its first NUL byte, as C sees it.
func cString(line []byte) []byte {
	for i, c := range line {
		if c == 0 {
			return line[:i]
		}
	}
	return line
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// strtol is C's strtol(s, &end, 0) on a 64-bit long: it returns the value,
// the index where parsing stopped and whether the value overflowed.
func strtol(s []byte) (v int64, end int, overflow bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	switch {
	case i+2 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && digitVal(s[i+2]) < 16:
		base = 16
		i += 2
	case i < len(s) && s[i] == '0':
		base = 8
	}
	start := i
	var u uint64
	limit := uint64(1) << 63 // |MinInt64|
	for i < len(s) {
		d := uint64(digitVal(s[i]))
		if d >= base {
			break
		}
		if !overflow {
			if u > (limit-d)/base {
				overflow = true
			} else {
				u = u*base + d
			}
		}
		i++
	}
	if i == start {
		return 0, 0, false // no conversion: end is the start of s
	}
	if !neg && u > limit-1 {
		overflow = true
	}
	if neg {
		return -int64(u), i, overflow
	}
	return int64(u), i, overflow
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// pyInt is PyLong_FromString(s, NULL, base) for base 0 or 10: surrounding
// whitespace, a sign, single underscores between digits, and for base 0 the
// 0x/0o/0b prefixes; a nonzero decimal number may not start with 0.
func pyInt(s []byte, base int) (any, error) {
	i, j := 0, len(s)
	for i < j && isCSpace(s[i]) {
		i++
	}
	for j > i && isCSpace(s[j-1]) {
		j--
	}
	t := s[i:j]
	neg := false
	if len(t) > 0 && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	b := 10
	prefixed := false
	if base == 0 && len(t) >= 2 && t[0] == '0' {
		switch t[1] {
		case 'x', 'X':
			b, prefixed = 16, true
		case 'o', 'O':
			b, prefixed = 8, true
		case 'b', 'B':
			b, prefixed = 2, true
		}
		if prefixed {
			t = t[2:]
		}
	}
	// Digits with single underscores between them (and after a prefix).
	digits := make([]byte, 0, len(t))
	for k := 0; k < len(t); k++ {
		c := t[k]
		if c == '_' {
			if k+1 >= len(t) || t[k+1] == '_' || (k == 0 && !prefixed) {
				return nil, errIntLiteral
			}
			continue
		}
		if digitVal(c) >= b {
			return nil, errIntLiteral
		}
		digits = append(digits, c)
	}
	if len(digits) == 0 {
		return nil, errIntLiteral
	}
	if base == 0 && !prefixed && digits[0] == '0' {
		for _, c := range digits {
			if c != '0' {
				return nil, errIntLiteral // "010" is not a base-0 literal
			}
		}
	}
	if b == 10 && len(digits) > 4300 {
		return nil, errors.New("exceeds the limit (4300 digits) for integer string conversion")
	}
	n, ok := new(big.Int).SetString(string(digits), b)
	if !ok {
		return nil, errIntLiteral
	}
	if neg {
		n.Neg(n)
	}
	return normInt(n), nil
}

// parseINT decodes the argument of INT (line without its newline).
func parseINT(line []byte) (any, error) {
	s := cString(line)
	x, end, overflow := strtol(s)
	if overflow || end < len(s) {
		// Not a C long: Python retries with PyLong_FromString(s, 0).
		return pyInt(s, 0)
	}
	if len(line) == 2 && (x == 0 || x == 1) {
		return x == 1, nil // "00" and "01" (and "+1", " 0"…) are bools
	}
	return x, nil
}

// parseLONG decodes the argument of LONG: an optional trailing L is removed.
func parseLONG(line []byte) (any, error) {
	if n := len(line); n > 0 && line[n-1] == 'L' {
		line = line[:n-1]
	}
	return pyInt(cString(line), 0)
}

// parseFLOAT decodes the argument of FLOAT as PyOS_string_to_double does: no
// surrounding space, no underscores, inf/infinity/nan in any case, an
// overflow is an error.
func parseFLOAT(line []byte) (float64, error) {
	s := cString(line)
	n := floatPrefix(s)
	if n == 0 || n != len(s) {
		return 0, errors.New("could not convert string to float")
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange && (f > 1 || f < -1) {
			return 0, errors.New("value too large to convert to float")
		}
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return f, nil
		}
		return 0, errors.New("could not convert string to float")
	}
	return f, nil
}

// floatPrefix returns the length of the longest prefix of s that is a
// decimal float literal, inf, infinity or nan.
func floatPrefix(s []byte) int {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for _, word := range []string{"infinity", "inf", "nan"} {
		if len(s)-i >= len(word) && equalFold(s[i:i+len(word)], word) {
			return i + len(word)
		}
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j {
			i = k
		}
	}
	return i
}

func equalFold(b []byte, lower string) bool {
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseMemoIndex decodes the argument of PUT and GET
// (PyLong_FromString(s, NULL, 10)).
func parseMemoIndex(line []byte, op string) (uint64, error) {
	v, err := pyInt(cString(line), 10)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, errors.New("negative " + op + " argument")
		}
		return uint64(x), nil
	}
	return 0, errors.New(op + " argument too large")
}

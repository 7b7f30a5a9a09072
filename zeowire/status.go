package zeowire

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// ctime formats t (in its own location; the server clock gives local time)
// as C's ctime does, without the newline:
// "Mon Jan  1 00:00:00 2024" (day of month padded with a space).
func ctime(t time.Time) string {
	return t.Format("Mon Jan _2 15:04:05 2006")
}

// statusJSON is the answer to the ruok probe: {name: server_status, ...}
// written like Python's json.dumps with default settings.
func (s *Server) statusJSON() []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range s.names {
		if i > 0 {
			b.WriteString(", ")
		}
		writeJSON(&b, n)
		b.WriteString(": ")
		writeJSON(&b, s.storages[n].status())
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// writeJSON renders the plain wire values found in status dicts the way
// Python's json module does (ensure_ascii, ", " and ": " separators).
func writeJSON(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case *big.Int:
		b.WriteString(x.String())
	case float64:
		b.WriteString(pyFloat(x))
	case string:
		b.WriteByte('"')
		for _, r := range x {
			switch {
			case r == '"':
				b.WriteString(`\"`)
			case r == '\\':
				b.WriteString(`\\`)
			case r == '\n':
				b.WriteString(`\n`)
			case r == '\r':
				b.WriteString(`\r`)
			case r == '\t':
				b.WriteString(`\t`)
			case r < 0x20 || r > 0x7e:
				if r > 0xffff {
					r -= 0x10000
					fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
				} else {
					fmt.Fprintf(b, `\u%04x`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	case Dict:
		b.WriteByte('{')
		for i, kv := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSON(b, kv.Key)
			b.WriteString(": ")
			writeJSON(b, kv.Value)
		}
		b.WriteByte('}')
	case Tuple:
		writeJSONList(b, x)
	case List:
		writeJSONList(b, x)
	default:
		writeJSON(b, fmt.Sprint(v))
	}
}

func writeJSONList(b *strings.Builder, l []any) {
	b.WriteByte('[')
	for i, e := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		writeJSON(b, e)
	}
	b.WriteByte(']')
}

// pyFloat formats a float as Python's repr does.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs >= 1e16 || abs < 1e-4) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Python writes e+16 / e-05 as e+16 / e-05: two digits minimum.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

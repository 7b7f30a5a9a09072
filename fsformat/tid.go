package fsformat

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Oid is an object id: 8 bytes on disk, ordered like a big-endian u64.
type Oid uint64

// Tid is a transaction id: a TimeStamp (see TimeStamp) stored as 8 bytes,
// ordered like a big-endian u64.
type Tid uint64

// ZeroTid is the lowest tid ("z64"); MaxTid is Python's maxtid.
const (
	ZeroTid Tid = 0
	MaxTid  Tid = 0x7fffffffffffffff
)

// OidFromBytes decodes 8 big-endian bytes.
func OidFromBytes(b []byte) Oid { return Oid(binary.BigEndian.Uint64(b)) }

// TidFromBytes decodes 8 big-endian bytes.
func TidFromBytes(b []byte) Tid { return Tid(binary.BigEndian.Uint64(b)) }

// Bytes returns the on-disk form.
func (o Oid) Bytes() [8]byte { var b [8]byte; binary.BigEndian.PutUint64(b[:], uint64(o)); return b }

// Bytes returns the on-disk form.
func (t Tid) Bytes() [8]byte { var b [8]byte; binary.BigEndian.PutUint64(b[:], uint64(t)); return b }

// String gives 16 lowercase hex digits (fsdump's %016x).
func (o Oid) String() string { return hex16(uint64(o)) }

// String gives 16 lowercase hex digits (fsdump's %016x).
func (t Tid) String() string { return hex16(uint64(t)) }

// Hexify is fstest's form: "0x" + 16 hex digits.
func (o Oid) Hexify() string { return "0x" + hex16(uint64(o)) }

// Hexify is fstest's form: "0x" + 16 hex digits.
func (t Tid) Hexify() string { return "0x" + hex16(uint64(t)) }

// Repr is ZODB's oid_repr: "0x" + hex without leading zeros, padded to an
// even number of digits ("0x00" for zero).
func (o Oid) Repr() string { return reprHex(uint64(o)) }

// Repr is ZODB's tid_repr (same rule as Oid.Repr).
func (t Tid) Repr() string { return reprHex(uint64(t)) }

// PyHex is Python's hex() of the integer ("0x0", "0x3f59...").
func (o Oid) PyHex() string { return "0x" + strconv.FormatUint(uint64(o), 16) }

// PyHex is Python's hex() of the integer.
func (t Tid) PyHex() string { return "0x" + strconv.FormatUint(uint64(t), 16) }

func hex16(v uint64) string {
	var b [16]byte
	return string(appendHex16(b[:0], v))
}

// AppendHex16 appends v as 16 lowercase hex digits (no allocation).
func AppendHex16(dst []byte, v uint64) []byte { return appendHex16(dst, v) }

func appendHex16(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>uint(shift))&0xf])
	}
	return dst
}

func reprHex(v uint64) string {
	s := strconv.FormatUint(v, 16)
	if v == 0 {
		s = ""
	}
	if len(s)%2 == 1 {
		s = "0" + s
	}
	if s == "" {
		s = "00"
	}
	return "0x" + s
}

// TimeStamp is the decoded form of a tid (persistent.TimeStamp): a date on a
// calendar whose months all have 31 days, and seconds as a float.
type TimeStamp struct {
	Year, Month, Day, Hour, Minute int
	Second                         float64
}

const secondUnit = 60.0 / 4294967296.0 // 60/2^32, exact in float64

// Time decodes the tid (filestorage.md §9.2). Any 8 bytes decode, possibly
// to impossible dates such as February 31.
func (t Tid) Time() TimeStamp {
	a := uint64(t) >> 32
	b := uint32(t)
	return TimeStamp{
		Minute: int(a % 60),
		Hour:   int(a / 60 % 24),
		Day:    int(a/1440%31) + 1,
		Month:  int(a/44640%12) + 1,
		Year:   int(a/535680) + 1900,
		Second: float64(b) * secondUnit,
	}
}

// String is str(TimeStamp): "YYYY-MM-DD HH:MM:SS.ffffff" (%09.6f seconds, so
// it can show 60.000000 as Python does).
func (ts TimeStamp) String() string {
	return string(ts.Append(make([]byte, 0, 26)))
}

// Append appends String() to dst.
func (ts TimeStamp) Append(dst []byte) []byte {
	dst = appendInt(dst, ts.Year, 4)
	dst = append(dst, '-')
	dst = appendInt(dst, ts.Month, 2)
	dst = append(dst, '-')
	dst = appendInt(dst, ts.Day, 2)
	dst = append(dst, ' ')
	dst = appendInt(dst, ts.Hour, 2)
	dst = append(dst, ':')
	dst = appendInt(dst, ts.Minute, 2)
	dst = append(dst, ':')
	// %09.6f: strconv rounds the exact binary value like C printf.
	start := len(dst)
	dst = strconv.AppendFloat(dst, ts.Second, 'f', 6, 64)
	for len(dst)-start < 9 {
		dst = append(dst[:start+1], dst[start:]...)
		dst[start] = '0'
	}
	return dst
}

func appendInt(dst []byte, v, width int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// Unix is TimeStamp.timeTime(): seconds since the Unix epoch; days beyond
// the real month length overflow into the next month.
func (ts TimeStamp) Unix() float64 {
	t := time.Date(ts.Year, time.Month(ts.Month), ts.Day, ts.Hour, ts.Minute, 0, 0, time.UTC)
	return float64(t.Unix()) + ts.Second
}

// GoTime converts to a time.Time in UTC (nanosecond precision, truncated).
func (ts TimeStamp) GoTime() time.Time {
	t := time.Date(ts.Year, time.Month(ts.Month), ts.Day, ts.Hour, ts.Minute, 0, 0, time.UTC)
	return t.Add(time.Duration(ts.Second * 1e9))
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// NewTid encodes a date like persistent's TimeStamp(y, mo, d, h, mi, s),
// with the same range checks. Seconds are clamped to [0, 60).
func NewTid(year, month, day, hour, minute int, second float64) (Tid, error) {
	switch {
	case year < 1900:
		return 0, fmt.Errorf("year must be greater than 1900: %d", year)
	case month < 1 || month > 12:
		return 0, fmt.Errorf("month must be between 1 and 12: %d", month)
	case day < 1 || day > daysIn(year, month):
		return 0, fmt.Errorf("day must be between 1 and %d: %d", daysIn(year, month), day)
	case hour < 0 || hour > 23:
		return 0, fmt.Errorf("hour must be between 0 and 23: %d", hour)
	case minute < 0 || minute > 59:
		return 0, fmt.Errorf("minute must be between 0 and 59: %d", minute)
	}
	a := uint64(((((year-1900)*12+(month-1))*31+(day-1))*24+hour)*60 + minute)
	if a > math.MaxUint32 {
		return 0, fmt.Errorf("year too large: %d", year)
	}
	b := second / secondUnit
	if !(b >= 0) { // negative or NaN
		b = 0
	}
	if b > math.MaxUint32 {
		b = math.MaxUint32
	}
	return Tid(a<<32 | uint64(uint32(b))), nil
}

// TidFromUnix is what ZODB does with time.time(): gmtime(t) for the minute,
// t % 60 (on the float64) for the seconds.
func TidFromUnix(t float64) Tid {
	whole := math.Floor(t)
	g := time.Unix(int64(whole), 0).UTC()
	sec := math.Mod(t, 60)
	if sec < 0 {
		sec += 60
	}
	tid, err := NewTid(g.Year(), int(g.Month()), g.Day(), g.Hour(), g.Minute(), sec)
	if err != nil {
		return 0
	}
	return tid
}

// TidFromTime encodes a time.Time (converted to UTC) with nanosecond seconds.
func TidFromTime(t time.Time) Tid {
	t = t.UTC()
	sec := float64(t.Second()) + float64(t.Nanosecond())/1e9
	tid, err := NewTid(t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), sec)
	if err != nil {
		return 0
	}
	return tid
}

// LaterThan returns t if t > old, else the smallest timestamp after old:
// old+1 in the seconds half, carrying into the minute on the real calendar
// (filestorage.md §9.5).
func (t Tid) LaterThan(old Tid) Tid {
	if t > old {
		return t
	}
	if uint32(old) != math.MaxUint32 {
		return old + 1
	}
	ts := old.Time()
	y, mo, d, h, mi := ts.Year, ts.Month, ts.Day, ts.Hour, ts.Minute+1
	if mi > 59 {
		mi = 0
		h++
		if h > 23 {
			h = 0
			d++
			if d > daysIn(y, mo) {
				d = 1
				mo++
				if mo > 12 {
					mo = 1
					y++
				}
			}
		}
	}
	a := uint64(((((y-1900)*12+(mo-1))*31+(d-1))*24+h)*60 + mi)
	if a > math.MaxUint32 { // past year 9917: nothing later is representable
		return Tid(math.MaxUint64)
	}
	return Tid(a << 32)
}

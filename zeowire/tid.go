package zeowire

import (
	"math"
	"time"
)

// TidFromTime encodes a UTC time as a ZODB TimeStamp: the first 4 bytes are
// minutes since 1900-01-01 (with 31-day months), the last 4 the seconds
// within the minute scaled to 2**32/60. The scaling divides by 60/2**32
// exactly as ZODB does, so tids match the Python server's.
func TidFromTime(t time.Time) Tid {
	t = t.UTC()
	y, mo, d := t.Date()
	minutes := ((((uint64(y)-1900)*12+uint64(mo)-1)*31+uint64(d)-1)*24+uint64(t.Hour()))*60 + uint64(t.Minute())
	sec := float64(t.Second()) + float64(t.Nanosecond())/1e9
	low := uint64(math.Floor(sec / (60.0 / 4294967296.0)))
	if low > 0xffffffff {
		low = 0xffffffff
	}
	return Tid(minutes<<32 | low)
}

// Time decodes the tid's timestamp (UTC).
func (t Tid) Time() time.Time {
	minutes := uint64(t) >> 32
	low := uint64(t) & 0xffffffff
	mi := minutes % 60
	minutes /= 60
	h := minutes % 24
	minutes /= 24
	d := minutes % 31
	minutes /= 31
	mo := minutes % 12
	y := minutes/12 + 1900
	sec := float64(low) * (60.0 / 4294967296.0)
	whole := math.Floor(sec)
	return time.Date(int(y), time.Month(mo+1), int(d+1), int(h), int(mi), int(whole), int((sec-whole)*1e9), time.UTC)
}

// Seconds returns the tid's time as seconds since the epoch (the float that
// history and undoLog report).
func (t Tid) Seconds() float64 {
	minutes := uint64(t) >> 32
	low := uint64(t) & 0xffffffff
	mi := minutes % 60
	minutes /= 60
	h := minutes % 24
	minutes /= 24
	d := minutes % 31
	minutes /= 31
	mo := minutes % 12
	y := minutes/12 + 1900
	day := time.Date(int(y), time.Month(mo+1), int(d+1), int(h), int(mi), 0, 0, time.UTC)
	return float64(day.Unix()) + float64(low)*(60.0/4294967296.0)
}

// LaterThan returns t if it is greater than prev, else prev+1 (the next
// possible tid, carrying into the minutes).
func (t Tid) LaterThan(prev Tid) Tid {
	if t > prev {
		return t
	}
	return prev + 1
}

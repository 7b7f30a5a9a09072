package fsformat

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTidEveryMinute walks every minute of several years (including the
// leap years 2000 and 2024 and the non-leap century 2100) and checks that
// encoding, decoding, ordering and LaterThan's carry agree with the real
// calendar.
func TestTidEveryMinute(t *testing.T) {
	years := []int{1900, 2000, 2023, 2024, 2100}
	if testing.Short() {
		years = []int{2024}
	}
	for _, y := range years {
		start := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		end := start.AddDate(1, 0, 0)
		var prev Tid
		minutes := 0
		for m := start; m.Before(end); m = m.Add(time.Minute) {
			tid, err := NewTid(m.Year(), int(m.Month()), m.Day(), m.Hour(), m.Minute(), 0)
			if err != nil {
				t.Fatalf("%v: %v", m, err)
			}
			if got := TidFromTime(m); got != tid {
				t.Fatalf("%v: TidFromTime %s, NewTid %s", m, got, tid)
			}
			if got := TidFromUnix(float64(m.Unix())); got != tid {
				t.Fatalf("%v: TidFromUnix %s, NewTid %s", m, got, tid)
			}
			ts := tid.Time()
			if ts.Year != m.Year() || ts.Month != int(m.Month()) || ts.Day != m.Day() || ts.Hour != m.Hour() || ts.Minute != m.Minute() || ts.Second != 0 {
				t.Fatalf("%v: decoded %+v", m, ts)
			}
			if ts.Unix() != float64(m.Unix()) {
				t.Fatalf("%v: timeTime %v", m, ts.Unix())
			}
			if prev != 0 {
				if tid <= prev {
					t.Fatalf("%v: tid %s not after %s", m, tid, prev)
				}
				// the last instant of the previous minute carries into this one
				if got := Tid(0).LaterThan(prev | 0xffffffff); got != tid {
					t.Fatalf("%v: LaterThan(%s) = %s, want %s", m, prev|0xffffffff, got, tid)
				}
			}
			prev = tid
			minutes++
		}
		leap := y%4 == 0 && (y%100 != 0 || y%400 == 0)
		want := 365 * 24 * 60
		if leap {
			want += 24 * 60
		}
		if minutes != want {
			t.Fatalf("%d: %d minutes", y, minutes)
		}
		_, err := NewTid(y, 2, 29, 0, 0, 0)
		if leap != (err == nil) {
			t.Errorf("%d: February 29 accepted=%v, leap=%v", y, err == nil, leap)
		}
	}
}

// TestTidSeconds checks the seconds half: B = trunc(s / (60/2^32)), decoded
// back within one unit, and printed with %09.6f.
func TestTidSeconds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		s := r.Float64() * 60
		tid, err := NewTid(2024, 3, 4, 5, 6, s)
		if err != nil {
			t.Fatal(err)
		}
		want := uint32(s / (60.0 / 4294967296.0))
		if uint32(tid) != want {
			t.Fatalf("%v s: B=%x, want %x", s, uint32(tid), want)
		}
		back := tid.Time().Second
		if back > s || s-back > 60.0/4294967296.0 {
			t.Fatalf("%v s decodes to %v", s, back)
		}
	}
	if tid, _ := NewTid(2024, 1, 1, 0, 0, 60); uint32(tid) != math.MaxUint32 {
		t.Errorf("60 s not clamped: %s", tid)
	}
}

// TestLaterThanProperties: the result is always strictly later than old
// (except at the very end of the representable range) and never earlier
// than the proposed tid.
func TestLaterThanProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		var old, cand Tid
		// real dates (years 1900-2200), random or extreme B
		m := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(300*366*24*60)) * time.Minute)
		old = TidFromTime(m)
		b := uint64(r.Uint32())
		if i%3 == 0 {
			b = math.MaxUint32
		}
		old = old&^0xffffffff | Tid(b)
		cand = Tid(r.Uint64() >> 1)
		if i%2 == 0 {
			cand = old - Tid(r.IntN(1000))
		}
		got := cand.LaterThan(old)
		if got <= old {
			t.Fatalf("%s.LaterThan(%s) = %s, not later", cand, old, got)
		}
		if cand > old && got != cand {
			t.Fatalf("%s.LaterThan(%s) = %s, want the candidate", cand, old, got)
		}
		if cand <= old && uint32(old) == math.MaxUint32 {
			ts := got.Time()
			if uint32(got) != 0 || ts.Day > daysIn(ts.Year, ts.Month) {
				t.Fatalf("carry from %s gave %s (%v)", old, got, ts)
			}
		}
	}
	// An impossible raw date (February 31) carries to March 1.
	feb31 := Tid(uint64(((((2023-1900)*12+1)*31+30)*24+23)*60+59)<<32 | 0xffffffff)
	if got := Tid(0).LaterThan(feb31).Time(); got.Month != 3 || got.Day != 1 || got.Hour != 0 {
		t.Errorf("after February 31: %+v", got)
	}
}

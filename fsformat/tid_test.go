package fsformat

import "testing"

func TestTidExamples(t *testing.T) {
	cases := []struct {
		tid  Tid
		str  string
		unix float64
	}{
		{0x03f5945838888888, "2024-01-02 03:04:13.250000", 1704164653.25},
		{0x03f5945815dc2e5a, "2024-01-02 03:04:05.123457", 0},
		{0x040d46366490f155, "2026-11-26 12:06:23.570199", 0},
		{0, "1900-01-01 00:00:00.000000", -2208988800.0},
		{MaxTid, "5908-11-23 02:07:60.000000", 0},
		{0x03f59458ffffffff, "2024-01-02 03:04:60.000000", 0},
	}
	for _, c := range cases {
		ts := c.tid.Time()
		if got := ts.String(); got != c.str {
			t.Errorf("%s: %s, want %s", c.tid, got, c.str)
		}
		if c.unix != 0 || c.tid == 0 {
			if got := ts.Unix(); got != c.unix {
				t.Errorf("%s: timeTime %v, want %v", c.tid, got, c.unix)
			}
		}
	}
	if tid, _ := NewTid(2024, 1, 2, 3, 4, 13.25); tid != 0x03f5945838888888 {
		t.Errorf("NewTid = %s", tid)
	}
	if tid, _ := NewTid(2024, 1, 2, 3, 4, 5.123456789); tid != 0x03f5945815dc2e5a {
		t.Errorf("NewTid = %s", tid)
	}
	if tid := TidFromUnix(1704164645.123456789); tid != 0x03f5945815dc2e55 {
		t.Errorf("TidFromUnix = %s", tid)
	}
	if tid := TidFromUnix(1800000000.0); tid != 0x040e642000000000 {
		t.Errorf("TidFromUnix(1.8e9) = %s", tid)
	}
	if tid := TidFromUnix(1900000000.0); tid != 0x042853eaaaaaaaaa {
		t.Errorf("TidFromUnix(1.9e9) = %s", tid)
	}
}

func TestLaterThanExamples(t *testing.T) {
	mk := func(y, mo, d, h, mi int) Tid {
		tid, err := NewTid(y, mo, d, h, mi, 0)
		if err != nil {
			t.Fatal(err)
		}
		return tid
	}
	cases := []struct{ old, want Tid }{
		{0x03f5945838888888, 0x03f5945838888889},
		{0x03f59458ffffffff, 0x03f5945900000000},
		{mk(2024, 1, 31, 23, 59) | 0xffffffff, 0x03f63c6000000000},
		{mk(2023, 12, 31, 23, 59) | 0xffffffff, 0x03f58e0000000000},
		{mk(2024, 2, 28, 23, 59) | 0xffffffff, mk(2024, 2, 29, 0, 0)},
		{mk(2023, 2, 28, 23, 59) | 0xffffffff, mk(2023, 3, 1, 0, 0)},
	}
	for _, c := range cases {
		if got := Tid(0).LaterThan(c.old); got != c.want {
			t.Errorf("LaterThan(%s) = %s, want %s", c.old, got, c.want)
		}
	}
	if got := Tid(10).LaterThan(5); got != 10 {
		t.Errorf("later tid not kept: %s", got)
	}
}

func TestTidRenderings(t *testing.T) {
	if s := Oid(0).Repr(); s != "0x00" {
		t.Error(s)
	}
	if s := Oid(0x100).Repr(); s != "0x0100" {
		t.Error(s)
	}
	if s := Oid(1).Hexify(); s != "0x0000000000000001" {
		t.Error(s)
	}
	if s := Tid(0x03f5945838888888).PyHex(); s != "0x3f5945838888888" {
		t.Error(s)
	}
	if s := Oid(0).PyHex(); s != "0x0" {
		t.Error(s)
	}
}

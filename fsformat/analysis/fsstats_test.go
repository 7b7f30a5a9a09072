package analysis

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func TestPyFloorDiv(t *testing.T) {
	for _, tc := range []struct {
		n, dot, want float64
	}{
		{123, 3.075, 39}, // the double nearest 3.075 is above it (basic.fs fixture)
		{132, 3.3, 40},
		{30, 3.075, 9},
		{40, 1.0, 40},
		{1, 3.3, 0},
	} {
		if got := pyFloorDiv(tc.n, tc.dot); got != tc.want {
			t.Errorf("%v // %v = %v, want %v", tc.n, tc.dot, got, tc.want)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for _, v := range []int64{64, 91, 64, 3, 91} {
		h.Add(v)
	}
	// Mode: first value in insertion order with the largest count.
	if h.Size() != 5 || h.Median() != 64 || h.Mode() != 64 || h.Max() != 91 || h.Mean() != 62.6 {
		t.Errorf("size %d median %d mode %d max %d mean %v", h.Size(), h.Median(), h.Mode(), h.Max(), h.Mean())
	}
}

// TestParseFsdumpQuirks checks fsstats' parsing rules: data lines without a
// size are ignored, the last transaction's count is added only when non-zero.
func TestParseFsdumpQuirks(t *testing.T) {
	text := `Trans #00000 tid=03f5945838888888 size=154 time=2024-01-02 03:04:13.250000 offset=52
    status=' ' user=b'' description=b'initial database creation'
  data #00000 oid=0000000000000000 size=64 class=persistent.mapping.PersistentMapping
Trans #00001 tid=03f594584ddddddd size=287 time=2024-01-02 03:04:18.250000 offset=214
    status=' ' user=b'bob' description=b'add p'
  data #00000 oid=0000000000000000 size=91 class=persistent.mapping.PersistentMapping
  data #00001 oid=0000000000000001 size=64 class=persistent.mapping.PersistentMapping
Trans #00002 tid=03f5945852222222 size=127 time=2024-01-02 03:04:19.250000 offset=488
    status=' ' user=b'' description=b'undo'
  data #00000 oid=0000000000000000 size=64 class=persistent.mapping.PersistentMapping bp=03f5945838888888
  data #00001 oid=0000000000000001 class=undo or abort of object creation
Trans #00003 tid=03f5945852222223 size=50 time=2024-01-02 03:04:19.250000 offset=600
`
	s := NewStats()
	if err := s.ParseFsdump(strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := s.Report(&b); err != nil {
		t.Fatal(err)
	}
	// Four transactions, but the summary counts the txn-objects histogram,
	// which gets one entry per following Trans line plus the last count only
	// when it is not zero: 3.
	if !strings.HasPrefix(b.String(), "Summary: 3 txns, 2 objects, 4 revisions\n") {
		t.Errorf("report starts %q", b.String()[:60])
	}
}

func TestParsePyInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"31", 31, true}, {"0x1f", 31, true}, {"0X1F", 31, true}, {"0o37", 31, true}, {"0b11111", 31, true},
		{" 7 ", 7, true}, {"0", 0, true}, {"000", 0, true}, {"1_000", 1000, true}, {"0x_ff", 255, true},
		{"0xffffffffffffffff", 1<<64 - 1, true},
		{"010", 0, false}, {"", 0, false}, {"0x", 0, false}, {"1__0", 0, false}, {"_1", 0, false},
		{"1_", 0, false}, {"abc", 0, false}, {"0x10000000000000000", 0, false}, {"-5", 0, false},
	} {
		got, err := ParsePyInt(tc.in)
		if (err == nil) != tc.ok || (tc.ok && uint64(got) != tc.want) {
			t.Errorf("ParsePyInt(%q) = %d, %v", tc.in, got, err)
		}
	}
}

// FuzzParseFsdump: any text parses without panicking, and a report can be
// written for it.
func FuzzParseFsdump(f *testing.F) {
	for _, name := range []string{"basic.fs.fsdump.txt", "dangling.fs.fsdump.txt", "multidb/Data2.fs.fsdump.txt"} {
		b, err := os.ReadFile("../../testdata/fs/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Trans tid=1 size=99999999999999999999\n  data oid=ffffffffffffffffff size=1 class=x\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		s := NewStats()
		if err := s.ParseFsdump(bytes.NewReader(text)); err != nil {
			return
		}
		s.Report(io.Discard)
		s.WriteJSON(io.Discard)
	})
}

package pickle

import (
	"math"
	"math/big"
	"strings"
	"testing"
)

// Protocol-0 numbers as CPython 3.11's pickle.loads reads them (each row was
// checked against it).
func TestTextNumbers(t *testing.T) {
	big20, _ := new(big.Int).SetString("99999999999999999999", 10)
	bigNeg, _ := new(big.Int).SetString("-9223372036854775809", 10)
	big63, _ := new(big.Int).SetString("9223372036854775808", 10)
	ok := []struct {
		in   string
		want any
	}{
		{"I 1\n.", true}, {"I+1\n.", true}, {"I00\n.", false}, {"I01\n.", true}, {"I1\n.", int64(1)},
		{"I\x006\n.", false}, {"I1_0\n.", int64(10)}, {"I 10 \n.", int64(10)}, {"I010\n.", int64(8)},
		{"I060\n.", int64(48)}, {"I001001\n.", int64(513)}, {"I0x1f\n.", int64(31)}, {"I-0x1f\n.", int64(-31)},
		{"I 0x10\n.", int64(16)}, {"I12\x00zz\n.", int64(12)},
		{"I99999999999999999999\n.", big20}, {"I9223372036854775808\n.", big63}, {"I-9223372036854775809\n.", bigNeg},
		{"L0x10L\n.", int64(16)}, {"L 1_0 \n.", int64(10)}, {"L1\x00zzL\n.", int64(1)}, {"L5\n.", int64(5)},
		{"Finf\n.", math.Inf(1)}, {"FInfinity\n.", math.Inf(1)}, {"F-inf\n.", math.Inf(-1)}, {"F.5\x00z\n.", 0.5},
		{"F.5e+1\n.", 5.0}, {"F1e-400\n.", 0.0},
		{"(K\x01p 0 \ng0\n\x86.", Tuple{int64(1), int64(1)}}, {"K\x01p1_0\ng10\n\x86.", Tuple{int64(1), int64(1)}},
	}
	for _, tt := range ok {
		got, err := Unmarshal([]byte(tt.in))
		if err != nil || !Equal(got, tt.want) {
			t.Errorf("%q: got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if v, err := Unmarshal([]byte("I1\n.")); err != nil || v != any(int64(1)) {
		t.Errorf("I1 must be the int 1, not True: %#v", v)
	}
	bad := []string{"F1e999\n.", "F 1.5\n.", "F1.5 \n.", "L010L\n.", "I08\n.", "I0100000000000000000000000\n.",
		"F1_0\n.", "F0x10\n.", "I\n.", "F\n.", "L\n.", "LL\n.", "I0x\n.", "I1 2\n.", "I1__0\n.", "I_1\n.",
		"K\x01p-1\n.", "K\x01p99999999999999999999\n.", "L" + strings.Repeat("9", 4301) + "\n."}
	for _, in := range bad {
		if v, err := Unmarshal([]byte(in)); err == nil {
			t.Errorf("%q: accepted as %v", in, v)
		}
	}
}

package pyrepr

import "testing"

func TestBytes(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `b''`},
		{"it's", `b"it's"`},
		{`say "hi"`, `b'say "hi"'`},
		{`both ' and "`, `b'both \' and "'`},
		{"tab\there\nnl\r\x00\x7f\x80\xff\\", `b'tab\there\nnl\r\x00\x7f\x80\xff\\'`},
		{"J\xc3\xb6rg", `b'J\xc3\xb6rg'`},
	}
	for _, c := range cases {
		if got := Bytes([]byte(c.in)); got != c.want {
			t.Errorf("Bytes(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	if got := Str([]byte(" ")); got != `' '` {
		t.Errorf("Str = %s", got)
	}
}

func TestFloat(t *testing.T) {
	cases := []struct {
		in   float64
		want string
	}{
		{7, "7.0"}, {304.8, "304.8"}, {1.5555555555555556, "1.5555555555555556"},
		{277.85714285714283, "277.85714285714283"}, {1e16, "1e+16"}, {1.5e-05, "1.5e-05"},
		{1234567, "1234567.0"}, {1e15, "1000000000000000.0"}, {0, "0.0"}, {-2.5, "-2.5"},
		{0.0001, "0.0001"}, {1704164653.25, "1704164653.25"}, {-2208988800, "-2208988800.0"},
	}
	for _, c := range cases {
		if got := Float(c.in); got != c.want {
			t.Errorf("Float(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

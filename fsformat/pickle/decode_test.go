package pickle

import (
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Hand-written pickles: text opcodes (protocol 0, Python 2 era), memo forms
// and the shapes of references.md.
func TestDecodeForms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"INT bool", "I01\n.", true},
		{"INT", "I-42\n.", int64(-42)},
		{"INT big", "I123456789012345678901234567890\n.", bigInt("123456789012345678901234567890")},
		{"LONG with L", "L12345678901234567890L\n.", bigInt("12345678901234567890")},
		{"LONG small", "L5L\n.", int64(5)},
		{"FLOAT", "F1.5\n.", 1.5},
		{"STRING", "S'a\\'b\\x41\\n\\101'\n.", []byte("a'bA\nA")},
		{"STRING dq", "S\"x\"\n.", []byte("x")},
		{"UNICODE", "Vh\\u00e9\\U0001f600\\\\u\n.", "h\u00e9\U0001f600\\\\u"},
		{"UNICODE latin1", "V\xe9\n.", "\u00e9"},
		{"SHORT_BINSTRING", "U\x03abc.", []byte("abc")},
		{"BINSTRING", "T\x02\x00\x00\x00ab.", []byte("ab")},
		{"text tuple memo", "(I1\np0\ng0\ntp1\n.", Tuple{int64(1), int64(1)}},
		{"LIST/APPEND", "(lp0\nI1\naI2\na.", List{int64(1), int64(2)}},
		{"DICT", "(dp0\nS'k'\np1\nI1\ns.", Dict{{[]byte("k"), int64(1)}}},
		{"DICT opcode", "(S'a'\nI1\nS'b'\nI2\nd.", Dict{{[]byte("a"), int64(1)}, {[]byte("b"), int64(2)}}},
		{"duplicate keys", "}(K\x01K\x02K\x01K\x03u.", Dict{{int64(1), int64(3)}}},
		{"True key replaces 1", "}(K\x01K\x02\x88K\x03u.", Dict{{int64(1), int64(3)}}},
		{"POP", "K\x01K\x020.", int64(1)},
		{"POP pops empty mark", "K\x01(0.", int64(1)},
		{"POP_MARK", "K\x01(K\x02K\x031.", int64(1)},
		{"DUP", "K\x012\x86.", Tuple{int64(1), int64(1)}},
		{"PERSID", "Pabc\n.", PersistentRef{"abc"}},
		{"BINPERSID list", "\x80\x03](X\x01\x00\x00\x00wC\x08\x00\x00\x00\x00\x00\x00\x00\x01\x85eQ.", PersistentRef{List{"w", Tuple{[]byte("\x00\x00\x00\x00\x00\x00\x00\x01")}}}},
		{"LONG1 negative", "\x80\x02\x8a\x01\xff.", int64(-1)},
		{"LONG1 empty", "\x80\x02\x8a\x00.", int64(0)},
		{"LONG4", "\x80\x02\x8b\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01.", new(big.Int).Lsh(big.NewInt(1), 64)},
		{"FRAME + SHORT_BINUNICODE + MEMOIZE", "\x80\x04\x95\x07\x00\x00\x00\x00\x00\x00\x00\x8c\x03abc\x94.", "abc"},
		{"BYTEARRAY8", "\x80\x05\x96\x02\x00\x00\x00\x00\x00\x00\x00ab.", ByteArray("ab")},
		{"sparse memo", "K\x07r\xff\xff\xff\x7fj\xff\xff\xff\x7f\x86.", Tuple{int64(7), int64(7)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unmarshal([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !Equal(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func bigInt(s string) *big.Int {
	n, _ := new(big.Int).SetString(s, 10)
	return n
}

// A list memoized before its APPENDS is the same list wherever it is fetched.
func TestDecodeSharedList(t *testing.T) {
	// [l, l] where l = [1, 2]: ]q\x00 ... then h\x00 fetches l again.
	data := mustHex(t, "8003 5d 7100 28 5d 7101 28 4b01 4b02 65 6801 65 2e")
	got, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	want := List{List{int64(1), int64(2)}, List{int64(1), int64(2)}}
	if !Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// ZODB records are two pickles sharing one memo (references.md §1).
func TestDecodeRecordSharedMemo(t *testing.T) {
	rec := "\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00." +
		"\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03X\x01\x00\x00\x00pq\x04C\x08\x00\x00\x00\x00\x00\x00\x00\x01q\x05h\x00\x86q\x06Qsss."
	rec = rec[:len(rec)-4] + "ss."
	d := NewDecoder([]byte(rec))
	d.FindGlobal = AllowGlobals("persistent.mapping.PersistentMapping")
	cls, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if cls != (Global{"persistent.mapping", "PersistentMapping"}) {
		t.Fatalf("class %v", cls)
	}
	state, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	want := Dict{{"data", Dict{{"p", PersistentRef{Tuple{[]byte("\x00\x00\x00\x00\x00\x00\x00\x01"), cls}}}}}}
	if !Equal(state, want) {
		t.Fatalf("state %v, want %v", state, want)
	}
	if d.Offset() != len(rec) {
		t.Fatalf("offset %d of %d", d.Offset(), len(rec))
	}
	// The state pickle alone fails: the class is in the first one's memo.
	if _, err := Unmarshal([]byte(rec[strings.Index(rec, ".\x80")+1:])); err == nil || !strings.Contains(err.Error(), "memo key 0 not found") {
		t.Fatalf("state alone: %v", err)
	}
}

func TestDecodeGlobalPolicy(t *testing.T) {
	data := mustHex(t, "8003284b0289580400000070696e67636f730a73797374656d0a580400000074727565855285742e")
	_, err := Unmarshal(data)
	var ge *GlobalError
	if !errors.As(err, &ge) || ge.Module != "os" || ge.Name != "system" {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "global os.system not allowed") {
		t.Errorf("message %q", err)
	}
	d := NewDecoder(data)
	d.FindGlobal = AllowGlobals("builtins.*")
	if _, err := d.Decode(); !errors.As(err, &ge) {
		t.Fatalf("builtins.* admitted os.system: %v", err)
	}
	d.Reset(data)
	d.FindGlobal = AnyGlobal
	v, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	o := v.(Tuple)[3].(Tuple)[0].(*Object)
	if o.Callable != (Global{"os", "system"}) || !Equal(o.Args, Tuple{"true"}) {
		t.Fatalf("object %#v", o)
	}
	// Protocol-2 names are mapped to Python 3 before the policy sees them.
	d.Reset([]byte("\x80\x02c__builtin__\nset\n]\x85R."))
	d.FindGlobal = AllowGlobals("builtins.set")
	if v, err := d.Decode(); err != nil || !Equal(v, &Set{Items: []any{}}) {
		t.Fatalf("set: %v %v", v, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in, msg string
	}{
		{"", "truncated"},
		{"K", "truncated"},
		{"B\xff\xff\xff\xffab.", "truncated"},
		{"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff.", "truncated"},
		{"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7fN.", "truncated"},
		{"\x8b\xff\xff\xff\x7f", "truncated"},
		{"\x8b\xff\xff\xff\xff", "negative byte count"},
		{"T\xff\xff\xff\xff", "negative byte count"},
		{"t.", "MARK"},
		{"0.", "underflow"},
		{"(K\x01\x86.", "underflow"},
		{"a.", "underflow"},
		{"K\x01K\x02a.", "APPEND to int"},
		{"h\x05.", "memo key 5 not found"},
		{"(K\x01d.", "odd number"},
		{"\x80\x06N.", "unsupported pickle protocol: 6"},
		{"\xff", "invalid load key"},
		{"S'abc\n.", "quoted"},
		{"Iabc\n.", "could not convert string to int"},
		{"]q\x00h\x00a.", "recursive"},
		{"}]K\x01s.", "unhashable"},
		{"\x82\x01.", "extension"},
		{"NK\x01R.", "REDUCE args must be a tuple"},
	}
	for _, tt := range tests {
		_, err := Unmarshal([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: got %v, want error containing %q", tt.in, err, tt.msg)
		}
		var pe *Error
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("%q: %T is not a *pickle.Error", tt.in, err)
		}
	}
	d := NewDecoder([]byte("N.N."))
	d.MaxProtocol = 3
	if _, err := Unmarshal([]byte("\x80\x04N.")); err != nil {
		t.Fatal(err)
	}
	d.Reset([]byte("\x80\x04N."))
	if _, err := d.Decode(); err == nil || !strings.Contains(err.Error(), "unsupported pickle protocol: 4") {
		t.Fatalf("MaxProtocol: %v", err)
	}
}

// The spec's test vectors (zeo-protocol.md §3.4), pickle mode.
func TestZEOSpecVectors(t *testing.T) {
	oid1 := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	tid := mustHex(t, "03ac11b771fa1c00")
	tid2 := mustHex(t, "03ac11b771fa1c01")
	tests := []struct {
		v   any
		hex string
	}{
		{Tuple{int64(1), false, "register", Tuple{"1", false}}, "8003284b0189580800000072656769737465725801000000318986742e"},
		{Tuple{int64(-1), int64(0), ".reply", nil}, "8003284affffffff4b0058060000002e7265706c794e742e"},
		{Tuple{Tuple{oid1, tid2}, false, "loadBefore", Tuple{oid1, tid2}}, "80032843080000000000000001430803ac11b771fa1c018689580a0000006c6f61644265666f726543080000000000000001430803ac11b771fa1c0186742e"},
		{Tuple{Tuple{oid1, tid2}, int64(0), ".reply", Tuple{[]byte("DATA"), tid, nil}}, "80032843080000000000000001430803ac11b771fa1c01864b0058060000002e7265706c794304444154 41430803ac11b771fa1c004e87742e"},
		{Tuple{int64(0), true, "tpc_begin", Tuple{int64(140000000000000), []byte{}, []byte{}, Dict{}, nil, " "}}, "8003284b008858090000007470635f626567696e288a0600c0444a547f430043007d4e58010000002074742e"},
		{Tuple{int64(3), int64(0), ".reply", List{}}, "8003284b034b0058060000002e7265706c795d742e"},
		{Tuple{int64(0), true, "invalidateTransaction", Tuple{tid2, List{oid1}}}, "8003284b00885815000000696e76616c69646174655472616e73616374696f6e430803ac11b771fa1c015d430800000000000000016186742e"},
		{Tuple{int64(0), true, "info", Tuple{Dict{{"length", int64(2)}, {"size", int64(447)}}}}, "8003284b00885804000000696e666f7d2858060000006c656e6774684b02580400000073697a654dbf017585742e"},
	}
	var e Encoder
	e.Protocol, e.Fast = 3, true
	var buf []byte
	for _, tt := range tests {
		want := mustHex(t, tt.hex)
		var err error
		buf, err = e.Append(buf[:0], tt.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf) != string(want) {
			t.Errorf("encode %v:\n got %x\nwant %x", tt.v, buf, want)
		}
		got, err := Unmarshal(want)
		if err != nil || !Equal(got, tt.v) {
			t.Errorf("decode %x: %v %v", want, got, err)
		}
	}
}

func TestEncodeInvalidUTF8(t *testing.T) {
	if _, err := MarshalFast("a\xffb", 3); err == nil || !strings.Contains(err.Error(), "invalid UTF-8") {
		t.Errorf("invalid UTF-8 str: %v", err)
	}
	// A lone surrogate in its surrogatepass form is a valid Python str.
	b, err := MarshalFast("\xed\xa0\x80", 3)
	if err != nil || string(b) != "\x80\x03X\x03\x00\x00\x00\xed\xa0\x80." {
		t.Errorf("surrogate: %q %v", b, err)
	}
	if _, err := Marshal("a\xffb", 0); err != nil {
		t.Errorf("protocol 0 escapes every byte: %v", err)
	}
}

// Boxes (values still open to APPENDS/BUILD) inside sets are resolved too.
func TestDecodeSetsOfBoxes(t *testing.T) {
	d := NewDecoder([]byte("\x80\x04((czfake\nf\n)R\x85\x91.\x80\x04\x8f(czfake\nf\n)R\x85\x90\x94."))
	d.FindGlobal = AnyGlobal
	obj := &Object{Callable: Global{"zfake", "f"}, Args: Tuple{}}
	for _, frozen := range []bool{true, false} {
		v, err := d.Decode()
		if err != nil {
			t.Fatal(err)
		}
		want := &Set{Items: []any{Tuple{obj}}, Frozen: frozen}
		if !Equal(v, want) {
			t.Errorf("got %#v, want %#v", v, want)
		}
	}
	// A set cannot be a dict key or a set item; a frozenset can.
	if _, err := Unmarshal([]byte("\x80\x04}\x8fK\x01s.")); err == nil || !strings.Contains(err.Error(), "unhashable type: 'set'") {
		t.Errorf("set key: %v", err)
	}
	if v, err := Unmarshal([]byte("\x80\x04}(K\x01\x91K\x01s.")); err != nil || !Equal(v, Dict{{&Set{Items: []any{int64(1)}, Frozen: true}, int64(1)}}) {
		t.Errorf("frozenset key: %v %v", v, err)
	}
}

// TestReducedSetUnhashable: a set built by REDUCE of builtins.set is a set
// while decoding, so it cannot be a dict key, alone or inside a tuple (a
// FuzzDecode finding); frozenset can.
func TestReducedSetUnhashable(t *testing.T) {
	for in, wantErr := range map[string]bool{
		"}c__builtin__\nset\n(]tRK\x01s.":         true,
		"}(c__builtin__\nset\n(]tRtK\x01s.":       true,
		"}c__builtin__\nfrozenset\n(]tRK\x01s.":   false,
		"}(c__builtin__\nfrozenset\n(]tRtK\x01s.": false,
	} {
		d := NewDecoder([]byte(in))
		d.FindGlobal = AnyGlobal
		_, err := d.Decode()
		if wantErr != (err != nil && strings.Contains(err.Error(), "unhashable type: 'set'")) || !wantErr && err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestReducedKeysMerge: keys and set items that are objects while decoding
// but plain values once decoded (bytes() by REDUCE) merge as Python's dict
// and set had merged them (a FuzzDecode finding); real objects stay
// distinct, as they hash by identity.
func TestReducedKeysMerge(t *testing.T) {
	decode := func(in string) any {
		t.Helper()
		d := NewDecoder([]byte(in))
		d.FindGlobal = AnyGlobal
		v, err := d.Decode()
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		return v
	}
	bytesCall := "c__builtin__\nbytes\n)R"
	if got, want := decode("\x80\x02}(K\x07K\x00"+bytesCall+"K\x01K\x08K\x00"+bytesCall+"K\x02u."), (Dict{{int64(7), int64(0)}, {[]byte{}, int64(2)}, {int64(8), int64(0)}}); !Equal(got, want) {
		t.Errorf("dict: %#v, want %#v", got, want)
	}
	bytes3 := "cbuiltins\nbytes\n)R" // protocol 3+: no Python 2 names
	if got := decode("\x80\x04(" + bytes3 + bytes3 + "K\x01\x91."); !Equal(got, &Set{Frozen: true, Items: []any{[]byte{}, int64(1)}}) {
		t.Errorf("frozenset: %#v", got)
	}
	if got, ok := decode("\x80\x02}(cm\nC\n)RK\x01cm\nC\n)RK\x02u.").(Dict); !ok || len(got) != 2 {
		t.Errorf("two objects as keys: %#v, want both kept", got)
	}
}

// TestPersistentRefKeys: persistent references are hashable dict keys (what
// persistent_load returns is an object), also when their id is still being
// built, and equal ids are one key (a FuzzDecode finding).
func TestPersistentRefKeys(t *testing.T) {
	for _, in := range []string{
		"}((K\x01tQK\x01(K\x01tQK\x02u.",             // ids built by MARK … TUPLE
		"}((K\x01tq\x00QK\x01(K\x01tq\x01QK\x02u.",   // memoized ids
		"\x80\x02}(K\x01\x85QK\x01K\x01\x85QK\x02u.", // TUPLE1
		// ids holding b'\x01' written as _codecs.encode (protocols < 3): an
		// object until the end of decoding
		"}((c_codecs\nencode\n(X\x01\x00\x00\x00\x01X\x06\x00\x00\x00latin1tRtQK\x01(c_codecs\nencode\n(X\x01\x00\x00\x00\x01X\x06\x00\x00\x00latin1tRtQK\x02u.",
	} {
		d := NewDecoder([]byte(in))
		d.FindGlobal = AnyGlobal
		v, err := d.Decode()
		want := Dict{{PersistentRef{ID: Tuple{int64(1)}}, int64(2)}}
		if strings.Contains(in, "latin1") {
			want = Dict{{PersistentRef{ID: Tuple{[]byte{1}}}, int64(2)}}
		}
		if err != nil || !Equal(v, want) {
			t.Errorf("%q: %#v %v, want %#v", in, v, err, want)
		}
	}
}

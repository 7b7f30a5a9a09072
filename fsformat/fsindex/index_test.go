package fsindex

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtures(t testing.TB) []string {
	files, err := filepath.Glob("../../testdata/fs/*.index")
	if err != nil || len(files) < 5 {
		t.Fatalf("index fixtures: %v %v", files, err)
	}
	return files
}

// Every index ZODB wrote reads and writes back byte for byte.
func TestFixturesRoundTrip(t *testing.T) {
	for _, name := range fixtures(t) {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		x, pos, err := Read(name)
		if err != nil {
			t.Fatal(err)
		}
		if x.Len() == 0 || pos < 100 {
			t.Errorf("%s: %d entries, pos %d", name, x.Len(), pos)
		}
		var buf bytes.Buffer
		if err := x.Save(&buf, pos); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: written %d bytes differ from ZODB's %d", name, buf.Len(), len(want))
		}
		out := filepath.Join(t.TempDir(), "Data.fs.index")
		if err := Write(out, x, pos); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: Write differs", name)
		}
	}
}

// basic.fs.index per the spec: pos 44699, one prefix with 132 entries.
func TestBasicFixture(t *testing.T) {
	x, pos, err := Read("../../testdata/fs/basic.fs.index")
	if err != nil {
		t.Fatal(err)
	}
	if pos != 44699 || x.Len() != 132 {
		t.Fatalf("pos %d, %d entries", pos, x.Len())
	}
	if p, ok := x.Get(0); !ok || p < 4 || p >= 44699 {
		t.Errorf("root at %d %v", p, ok)
	}
	if m, ok := x.MaxOid(); !ok || m != 131 {
		t.Errorf("max oid %d", m)
	}
}

// The worked examples of fsindex.md §4.
func TestSpecExamples(t *testing.T) {
	tiny := unhex(t, `80 03 4d 54 02 2e
		80 03 43 06 00 00 00 00 00 00 43 10 00 00 00 01 00 00 00 00 01 e8 00 00 00 00 02 1a 86 2e
		80 03 4e 2e`)
	two := unhex(t, `8003 8a06 640000000001 2e
		8003 4306 000000000000 4310 0000 0001 000000000034 00000000012c 86 2e
		8003 4306 000000000001 4310 0001 0002 000000123456 010000000005 86 2e
		8003 4e 2e`)
	tests := []struct {
		file    []byte
		pos     uint64
		entries map[uint64]uint64
	}{
		{tiny, 596, map[uint64]uint64{0: 488, 1: 538}},
		{two, 1<<40 + 100, map[uint64]uint64{0: 52, 1: 300, 0x10001: 0x123456, 0x10002: 1<<40 + 5}},
	}
	for _, tt := range tests {
		x := New()
		for k, v := range tt.entries {
			x.Set(k, v)
		}
		var buf bytes.Buffer
		if err := x.Save(&buf, tt.pos); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), tt.file) {
			t.Errorf("Save:\n got %x\nwant %x", buf.Bytes(), tt.file)
		}
		y, pos, err := Load(bytes.NewReader(tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if pos != tt.pos || !y.Equal(x) {
			t.Errorf("Load: pos %d, entries %v", pos, collect(y))
		}
	}
}

func collect(x *Index) map[uint64]uint64 {
	m := map[uint64]uint64{}
	for k, v := range x.All() {
		m[k] = v
	}
	return m
}

// Each pickle Save writes is exactly what the pickler writes in fast mode
// for (prefix, bucket) — the writer is checked against the codec on many
// shapes: 31/32 entries (SHORT_BINBYTES/BINBYTES), full 65536-entry
// buckets, many prefixes, every int width of pos.
func TestSaveMatchesPickler(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 31, 32, 33, 255, 256, 257, 5000, 65536, 200000} {
		x := New()
		want := map[uint64]uint64{}
		for len(want) < n {
			var oid uint64
			switch rng.IntN(3) {
			case 0:
				oid = uint64(len(want))
			case 1:
				oid = rng.Uint64N(1 << 20)
			default:
				oid = rng.Uint64()
			}
			pos := rng.Uint64N(MaxPos)
			want[oid] = pos
			x.Set(oid, pos)
		}
		if x.Len() != len(want) {
			t.Fatalf("Len %d, want %d", x.Len(), len(want))
		}
		for oid, pos := range want {
			if p, ok := x.Get(oid); !ok || p != pos {
				t.Fatalf("Get(%x) = %d %v, want %d", oid, p, ok, pos)
			}
		}
		positions := []uint64{100, 255, 256, 65535, 65536, 1<<31 - 1, 1 << 31, 1<<32 + 7, MaxPos - 1}
		if n > 1000 {
			positions = positions[7:] // the pos pickle is checked on the small ones
		}
		for _, pos := range positions {
			var buf bytes.Buffer
			if err := x.Save(&buf, pos); err != nil {
				t.Fatal(err)
			}
			if want := expectedFile(t, x, pos); !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("n=%d pos=%d: Save differs from the pickler at byte %d", n, pos, firstDiff(buf.Bytes(), want))
			}
			y, p, err := Load(bytes.NewReader(buf.Bytes()))
			if err != nil || p != pos || !y.Equal(x) {
				t.Fatalf("n=%d: reload: pos %d, %v", n, p, err)
			}
		}
	}
}

// expectedFile builds the file with the pickle codec, following the spec.
func expectedFile(t testing.TB, x *Index, pos uint64) []byte {
	out, err := pickle.MarshalFast(int64(pos), 3)
	if err != nil {
		t.Fatal(err)
	}
	var prefix []byte
	var keys, vals []byte
	flush := func() {
		if prefix == nil {
			return
		}
		p, err := pickle.MarshalFast(pickle.Tuple{prefix, append(keys, vals...)}, 3)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p...)
		keys, vals = nil, nil
	}
	for oid, p := range x.All() {
		var b [8]byte
		for i := range 8 {
			b[i] = byte(oid >> (56 - 8*i))
		}
		if prefix == nil || !bytes.Equal(prefix, b[:6]) {
			flush()
			prefix = append([]byte(nil), b[:6]...)
		}
		keys = append(keys, b[6:]...)
		vals = append(vals, byte(p>>40), byte(p>>32), byte(p>>24), byte(p>>16), byte(p>>8), byte(p))
	}
	flush()
	n, _ := pickle.MarshalFast(nil, 3)
	return append(out, n...)
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Python 2 wrote protocol 2 with SHORT_BINSTRING; lists, memo, str and
// other int forms are accepted too, as fsIndex.load accepts them.
func TestReadVariants(t *testing.T) {
	bucket80 := make([]byte, 80)
	for i := 0; i < 10; i++ {
		bucket80[2*i+1] = byte(i)
		bucket80[20+6*i+5] = byte(100 + i)
	}
	py2 := append(unhex(t, "80 02 4d 87 35 2e 80 02 55 06 000000000000 55 50"), bucket80...)
	py2 = append(py2, unhex(t, "86 2e 80 02 4e 2e")...)
	x, pos, err := Load(bytes.NewReader(py2))
	if err != nil {
		t.Fatal(err)
	}
	if pos != 0x3587 || x.Len() != 10 {
		t.Fatalf("py2: pos %d, %d entries", pos, x.Len())
	}
	if p, _ := x.Get(9); p != 109 {
		t.Fatalf("py2: oid 9 at %d", p)
	}

	// Protocol 0 text, a list instead of a tuple, memo opcodes, str values,
	// an empty tuple as terminator, and trailing bytes after it.
	text := "I700\n." +
		"(lp0\nS'\\x00\\x00\\x00\\x00\\x00\\x01'\np1\naS'\\x00\\x05\\x00\\x00\\x00\\x00\\x01\\x00'\np2\na." +
		"\x80\x03X\x06\x00\x00\x00\x00\x00\x00\x00\x00\x02q\x00C\x08\x00\x07\x00\x00\x00\x00\x02\x00q\x01\x86q\x02." +
		")." + "garbage"
	x, pos, err = Load(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if pos != 700 || !x.Equal(fromMap(map[uint64]uint64{0x10005: 256, 0x20007: 512})) {
		t.Fatalf("text: pos %d, %v", pos, collect(x))
	}

	// Other falsy terminators end the list too (fsIndex.load: "if not v").
	for _, term := range []string{"\x80\x03).", "\x80\x03\x89.", "K\x00.", "\x80\x03C\x00.", "\x80\x04\x8f.", "\x80\x03].", "\x80\x03}."} {
		x, _, err := Load(strings.NewReader("K\x64." + term))
		if err != nil || x.Len() != 0 {
			t.Errorf("terminator %q: %v", term, err)
		}
	}

	// A prefix repeated replaces the earlier bucket; unsorted suffixes.
	rep := "K\x64." +
		"\x80\x03C\x06\x00\x00\x00\x00\x00\x00C\x10\x00\x02\x00\x01\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x86." +
		"\x80\x03C\x06\x00\x00\x00\x00\x00\x00C\x08\x00\x03\x00\x00\x00\x00\x00\x03\x86." +
		"N."
	x, _, err = Load(strings.NewReader(rep))
	if err != nil {
		t.Fatal(err)
	}
	if !x.Equal(fromMap(map[uint64]uint64{3: 3})) {
		t.Fatalf("repeat: %v", collect(x))
	}
}

func fromMap(m map[uint64]uint64) *Index {
	x := New()
	for k, v := range m {
		x.Set(k, v)
	}
	return x
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		in, msg string
	}{
		{"", "ends inside a pickle"},
		{"\x80\x03}q\x00(X\x05\x00\x00\x00indexq\x01}X\x03\x00\x00\x00posK\x01u.", "old-format"},
		{"\x80\x03cZODB.fsIndex\nfsIndex\n).", "old-format"},
		{"K\x64.", "no None terminator"},
		{"K\x64.\x80\x03C\x06\x00\x00\x00\x00\x00\x00C\x07\x00\x00\x00\x00\x00\x00\x00\x86.N.", "multiple of 8"},
		{"K\x64.\x80\x03C\x05\x00\x00\x00\x00\x00C\x08\x00\x00\x00\x00\x00\x00\x00\x00\x86.N.", "prefix of 5 bytes"},
		{"K\x64.\x80\x03K\x01.N.", "pair"},
		{"K\x64.\x80\x03C\x06\x00\x00\x00\x00\x00\x00B\xff\xff\xff\x7f", "no None terminator"},
		{"J\xff\xff\xff\xff.N.", "negative"},
		{"K\x64.\x80\x03cos\nsystem\n.N.", "global os.system not allowed"},
		{"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.N.", "2^48"},
	}
	for _, tt := range tests {
		_, _, err := Load(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: got %v, want %q", tt.in, err, tt.msg)
		}
	}
	_, _, err := Load(strings.NewReader(tests[1].in))
	if !errors.Is(err, ErrOldFormat) {
		t.Errorf("old format: %v", err)
	}
	if _, _, err := Read(filepath.Join(t.TempDir(), "missing.index")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestHugePositions(t *testing.T) {
	x := New()
	x.Set(1, 100)
	if err := x.Save(&bytes.Buffer{}, MaxPos); !errors.Is(err, ErrPosTooLarge) {
		t.Errorf("pos 2^48: %v", err)
	}
	x.Set(2, MaxPos+5)
	if p, ok := x.Get(2); !ok || p != MaxPos+5 {
		t.Errorf("Get huge: %d", p)
	}
	if err := x.Save(&bytes.Buffer{}, 200); !errors.Is(err, ErrPosTooLarge) {
		t.Errorf("entry ≥ 2^48: %v", err)
	}
	x.Set(2, 7)
	if err := x.Save(&bytes.Buffer{}, 200); err != nil {
		t.Errorf("after overwrite: %v", err)
	}
}

func TestDeleteAndIterate(t *testing.T) {
	x := New()
	oids := []uint64{5, 1, 0x1ff, 0x100, 1 << 40, 2, 0xffffffffffffffff}
	for i, o := range oids {
		x.Set(o, uint64(i))
	}
	x.Set(1, 42)
	var got []uint64
	for o := range x.All() {
		got = append(got, o)
	}
	want := []uint64{1, 2, 5, 0x100, 0x1ff, 1 << 40, 0xffffffffffffffff}
	if len(got) != len(want) {
		t.Fatalf("All: %x", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("All: %x", got)
		}
	}
	if p, _ := x.Get(1); p != 42 {
		t.Errorf("overwrite: %d", p)
	}
	if !x.Delete(0x100) || x.Delete(0x100) || x.Len() != 6 {
		t.Errorf("Delete")
	}
	if !x.Delete(1<<40) || x.Len() != 5 {
		t.Errorf("Delete last of a page")
	}
	if m, _ := x.MaxOid(); m != 0xffffffffffffffff {
		t.Errorf("MaxOid %x", m)
	}
	if _, ok := x.Get(1 << 40); ok {
		t.Errorf("deleted oid found")
	}
}

// FuzzIndexRead: no input panics; what loads saves and reloads to the same.
func FuzzIndexRead(f *testing.F) {
	for _, name := range fixtures(f) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("K\x64.\x80\x03C\x06\x00\x00\x00\x00\x00\x00C\x10\x00\x02\x00\x01\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x86.N."))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, pos, err := Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := x.Save(&buf, pos); err != nil {
			if pos >= MaxPos {
				return
			}
			t.Fatal(err)
		}
		y, pos2, err := Load(bytes.NewReader(buf.Bytes()))
		if err != nil || pos2 != pos || !y.Equal(x) {
			t.Fatalf("reload: %v", err)
		}
	})
}

// Pages move from the map to the directory as the dense part grows past
// them; order, lookups and deletes work across both.
func TestDirectoryAndMap(t *testing.T) {
	x := New()
	want := map[uint64]uint64{}
	set := func(o, p uint64) { x.Set(o, p); want[o] = p }
	set(5000<<8|7, 1) // far above a small directory: in the map
	set(1<<50, 2)     // sparse for ever
	for o := uint64(0); o < 3000<<8; o += 97 {
		set(o, o)
	}
	set(5000<<8|3, 3)
	for o := uint64(3000 << 8); o < 6000<<8; o += 251 { // grows past 5000
		set(o, o+1)
	}
	if x.Len() != len(want) {
		t.Fatalf("Len %d, want %d", x.Len(), len(want))
	}
	prev, n := uint64(0), 0
	for o, p := range x.All() {
		if n > 0 && o <= prev {
			t.Fatalf("order: %x after %x", o, prev)
		}
		if want[o] != p {
			t.Fatalf("%x: %d, want %d", o, p, want[o])
		}
		prev, n = o, n+1
	}
	if n != len(want) {
		t.Fatalf("All gave %d", n)
	}
	for o, p := range want {
		if q, ok := x.Get(o); !ok || q != p {
			t.Fatalf("Get %x = %d %v", o, q, ok)
		}
	}
	for o := range want {
		if !x.Delete(o) {
			t.Fatalf("Delete %x", o)
		}
	}
	if x.Len() != 0 || x.npages != 0 {
		t.Fatalf("after deletes: %d entries, %d pages", x.Len(), x.npages)
	}
	if _, ok := x.MaxOid(); ok {
		t.Fatal("MaxOid of empty index")
	}
}

// TestSetSizesDensePages: a page that follows a full one is allocated for
// 256 oids at once; isolated oids never get such a page.
func TestSetSizesDensePages(t *testing.T) {
	x := New()
	for oid := uint64(0); oid <= 256; oid++ {
		x.Set(oid, oid+4)
	}
	if p := x.lookup(1); p == nil || cap(p.keys) != pageSize || cap(p.vals) != 6*pageSize {
		t.Fatalf("page after a full one not sized for %d oids", pageSize)
	}
	sparse := New()
	for k := uint64(0); k < 100; k++ {
		sparse.Set(k*256, k+4)
	}
	for k := uint64(0); k < 100; k++ {
		if p := sparse.lookup(k); p == nil || cap(p.keys) >= pageSize {
			t.Fatalf("page %d of isolated oids sized for a full page", k)
		}
		if pos, ok := sparse.Get(k * 256); !ok || pos != k+4 {
			t.Fatalf("oid %d: %d %v", k*256, pos, ok)
		}
	}
	for oid := uint64(0); oid <= 256; oid++ {
		if pos, ok := x.Get(oid); !ok || pos != oid+4 {
			t.Fatalf("oid %d: %d %v", oid, pos, ok)
		}
	}
}

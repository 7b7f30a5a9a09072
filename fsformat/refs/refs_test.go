package refs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// pb builds pickles opcode by opcode for the table tests.
type pb []byte

func (p pb) proto(n byte) pb       { return append(p, 0x80, n) }
func (p pb) global(m, n string) pb { return append(append(p, 'c'), m+"\n"+n+"\n"...) }
func (p pb) put(i byte) pb         { return append(p, 'q', i) }
func (p pb) get(i byte) pb         { return append(p, 'h', i) }
func (p pb) op(b ...byte) pb       { return append(p, b...) }
func (p pb) raw(b string) pb       { return append(p, b...) }
func (p pb) uni(s string) pb {
	p = append(p, 'X')
	p = binary.LittleEndian.AppendUint32(p, uint32(len(s)))
	return append(p, s...)
}
func (p pb) oid(o uint64) pb  { return binary.BigEndian.AppendUint64(append(p, 'C', 8), o) }
func (p pb) oid2(o uint64) pb { return binary.BigEndian.AppendUint64(append(p, 'U', 8), o) } // py2 str
func (p pb) str2(s string) pb { return append(append(p, 'U', byte(len(s))), s...) }

const (
	mark     = '('
	stop     = '.'
	tuple    = 't'
	tuple1   = 0x85
	tuple2   = 0x86
	tuple3   = 0x87
	emptyLst = ']'
	appendOp = 'a'
	appends  = 'e'
	persid   = 'Q'
	emptyDct = '}'
	setitems = 'u'
	none     = 'N'
)

// classPickle is the usual protocol-3 class pickle: memo[0] = the class.
func classPickle() pb { return pb{}.proto(3).global("mymod", "Thing").put(0).op(stop) }

// state wraps reference bytes in a protocol-3 state dict {'r': <refs>}.
func state(refs pb) []byte {
	p := classPickle().proto(3).op(emptyDct).put(1).op(mark).uni("r").put(2)
	return p.op(refs...).op(setitems, stop)
}

func TestReferenceForms(t *testing.T) {
	const o1, o2 = 1, 0x0102030405060708
	tests := []struct {
		name string
		data []byte
		want []string // "kind form oid db module.name legacy"
	}{
		{"oid with class", state(pb{}.oid(o1).put(3).global("mymod", "Thing").put(4).op(tuple2, persid)),
			[]string{"strong (oid, klass) 1 - mymod.Thing false"}},
		{"oid with class from the class pickle's memo", state(pb{}.oid(o2).get(0).op(tuple2, persid)),
			[]string{"strong (oid, klass) 102030405060708 - mymod.Thing false"}},
		{"bare oid", state(pb{}.oid(o1).put(3).op(persid)),
			[]string{"strong oid 1 - . false"}},
		{"legacy (oid, (module, name)), protocol 1",
			append(pb{}.global("mymod", "Thing").put(0).op(stop),
				pb{}.op(mark).oid2(o1).put(1).op(mark).str2("mymod").str2("Thing").op(tuple, tuple, persid, stop)...),
			[]string{"strong (oid, klass) 1 - mymod.Thing true"}},
		{"weak local", state(pb{}.op(emptyLst).put(3).op(mark).uni("w").oid(o1).op(tuple1, appends, persid)),
			[]string{"weak ['w', (oid,)] 1 - . false"}},
		{"weak cross", state(pb{}.op(emptyLst).op(mark).uni("w").put(3).oid(o1).uni("other").op(tuple2, appends, persid)),
			[]string{"weak ['w', (oid, db)] 1 other . false"}},
		{"weak kind reused through BINGET", state(pb{}.uni("w").put(3).op('0').
			op(emptyLst).op(mark).get(3).oid(o1).op(tuple1, appends, persid)),
			[]string{"weak ['w', (oid,)] 1 - . false"}},
		{"cross n", state(pb{}.op(emptyLst).op(mark).uni("n").uni("other").oid(o2).op(tuple2, appends, persid)),
			[]string{"strong ['n', (db, oid)] 102030405060708 other . false"}},
		{"cross m", state(pb{}.op(emptyLst).op(mark).uni("m").uni("other").oid(o1).get(0).op(tuple3, appends, persid)),
			[]string{"strong ['m', (db, oid, klass)] 1 other mymod.Thing false"}},
		{"cross m, py2 strings", state(pb{}.op(emptyLst).op(mark).str2("m").str2("other").oid2(o1).op(none, tuple3, appends, persid)),
			[]string{"strong ['m', (db, oid, klass)] 1 other . false"}},
		{"legacy weak [oid] with APPEND", state(pb{}.op(emptyLst).oid(o1).op(appendOp, persid)),
			[]string{"weak [oid] 1 - . false"}},
		{"legacy weak [oid] with LIST", state(pb{}.op(mark).oid(o1).op('l', persid)),
			[]string{"weak [oid] 1 - . false"}},
		{"unknown list kind", state(pb{}.op(emptyLst).op(mark).uni("x").oid(o1).op(tuple1, appends, persid)),
			[]string{"unknown unknown list 0 - . false"}},
		{"protocol 0 STRING oid", state(pb{}.op(mark).raw("S'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01'\n").op(none, tuple, persid)),
			[]string{"strong (oid, klass) 1 - . false"}},
		{"protocol 0 PERSID", state(pb{}.raw("PABCDEFGH\n")),
			[]string{"strong oid 4142434445464748 - . false"}},
		{"several, in order, duplicates kept", state(pb{}.op(emptyDct, mark).
			oid(o1).op(persid).oid(o2).get(0).op(tuple2, persid).oid(o1).op(persid).op(setitems)),
			[]string{"strong oid 1 - . false", "strong (oid, klass) 102030405060708 - mymod.Thing false", "strong oid 1 - . false"}},
		{"reference inside REDUCE args and BUILD state", state(pb{}.global("m", "f").op(mark).oid(o1).op(persid, tuple).op('R', emptyDct, 'b')),
			[]string{"strong oid 1 - . false"}},
		{"protocol 4 frame, short unicode, stack global, memoize", append(
			pb{}.proto(4).op(0x95, 1, 0, 0, 0, 0, 0, 0, 0).op(0x8c, 5).raw("mymod").op(0x94).op(0x8c, 5).raw("Thing").op(0x94, 0x93, 0x94, stop),
			pb{}.proto(4).op(emptyLst, 0x94, mark, 0x8c, 1, 'm', 0x94, 0x8c, 1, '2', 0x94).oid(o1).get(2).op(tuple3, appends, persid, stop)...),
			[]string{"strong ['m', (db, oid, klass)] 1 2 mymod.Thing false"}},
	}
	var s Scanner
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			refs, err := s.Scan(tc.data, nil)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			var got []string
			for _, r := range refs {
				db := "-"
				if r.DB != nil {
					db = string(r.DB)
				}
				got = append(got, fmt.Sprintf("%s %s %x %s %s.%s %v", r.Kind, r.Form, r.Oid, db, r.Module, r.Name, r.LegacyClass))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, r := range refs {
				if tc.data[r.Offset] != 'Q' && tc.data[r.Offset] != 'P' {
					t.Errorf("ref offset %d is not at a PERSID opcode", r.Offset)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	good := state(pb{}.oid(1).op(persid))
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"unknown opcode", append(classPickle(), 0x80, 3, 0xff), "pickle opcode 0xff at offset 20: unknown opcode"},
		{"truncated state", good[:len(good)-3], "unexpected end of data"},
		{"no state pickle", classPickle(), "no state pickle after the class pickle"},
		{"memo key missing", append(classPickle(), 'h', 9, stop), "BINGET (0x68) at offset 18: memo key 9 not found"},
		{"string length past the end", append(classPickle(), 'X', 0xff, 0xff, 0xff, 0x7f, 'a'), "BINUNICODE (0x58) at offset 18: string runs past the end"},
		{"negative BINSTRING length", append(classPickle(), 'T', 0xff, 0xff, 0xff, 0xff, 'a'), "string runs past the end"},
		{"short oid", state(pb{}.op('C', 3, 1, 2, 3, persid)), "BINPERSID (0x51) at offset 37: persistent id is a 3-byte string"},
		{"persistent id None", state(pb{}.op(none, persid)), "persistent id is not an oid, a tuple or a list"},
		{"stack underflow", append(classPickle(), 0x86, stop), "TUPLE2 (0x86) at offset 18: stack underflow"},
		{"APPENDS without MARK", append(classPickle(), ']', 'e'), "no MARK"},
		{"huge memo key", append(classPickle(), none, 'r', 0xff, 0xff, 0xff, 0xff, 'h', 1, stop), "memo key 1 not found"},
		{"bad protocol", append(classPickle(), 0x80, 9), "unsupported pickle protocol 9"},
		{"unquoted STRING", append(classPickle(), "Sabc\n."...), "must be quoted"},
	}
	var s Scanner
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Scan(tc.data, nil)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to contain %q", err, tc.want)
			}
		})
	}
	// The Scanner is still usable after errors.
	if refs, err := s.Scan(good, nil); err != nil || len(refs) != 1 {
		t.Errorf("after errors: refs %v, err %v", refs, err)
	}
}

func TestClass(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"form 1, protocol 3", classPickle(), "mymod.Thing"},
		{"form 1, protocol 1", pb{}.global("a.b", "C").put(1).op(stop), "a.b.C"},
		{"form 2 (klass, newargs)", pb{}.proto(2).global("m", "N").put(0).op(')').op(tuple2, stop), "m.N"},
		{"form 3, protocol 3", pb{}.proto(3).uni("mod").put(0).uni("Name").put(1).op(tuple2).put(2).op(none, tuple2).put(3).op(stop), "mod.Name"},
		{"form 3, protocol 1 (ZODB <= 3.2)", pb{}.op(mark, mark).str2("OFS.Folder").put(1).str2("Folder").put(2).op(tuple).put(3).op(none, tuple).put(4).op(stop), "OFS.Folder.Folder"},
		{"form 5 (MARK GLOBAL)", pb{}.op(mark).global("mod", "K").put(1).op(none, tuple).put(2).op(stop), "mod.K"},
		{"persistent class", pb{}.proto(3).oid(5).op(none, tuple2, persid, stop), "."},
		{"stack global (protocol 4)", pb{}.proto(4).op(0x8c, 1, 'm', 0x8c, 1, 'K', 0x93, stop), "m.K"},
		{"garbage", []byte{0x80, 3, 0xff}, "."},
		{"GLOBAL without newline", []byte("cmod"), "."},
		{"empty", nil, "."},
	}
	var s Scanner
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, n := s.Class(tc.data)
			if got := string(m) + "." + string(n); got != tc.want {
				t.Errorf("Class = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAnalyzeType(t *testing.T) {
	var s Scanner
	for _, tc := range []struct {
		data []byte
		want string
		err  error
	}{
		{classPickle(), "mymod.Thing", nil},
		{pb{}.proto(3).uni("mod").uni("Name").op(tuple2, none, tuple2, stop), "mod.Name", nil},
		{pb{}.proto(3).oid(5).op(none, tuple2, persid, stop), "", ErrPersistentClass},
	} {
		got, err := s.AnalyzeType(tc.data, nil)
		if string(got) != tc.want || err != tc.err {
			t.Errorf("AnalyzeType(%q) = %q, %v; want %q, %v", tc.data, got, err, tc.want, tc.err)
		}
	}
}

// TestSpecExample is the verified root state of references.md §5.
func TestSpecExample(t *testing.T) {
	st := pb{}.proto(3).op(emptyDct).put(1).uni("data").put(2).op(emptyDct).put(3).op(mark).
		uni("thing").put(4).oid(1).put(5).global("mymod", "Thing").put(6).op(tuple2).put(7).op(persid).
		uni("na").put(8).oid(2).put(9).op(persid).
		uni("tree").put(10).oid(3).put(11).global("BTrees.OOBTree", "OOBTree").put(12).op(tuple2).put(13).op(persid).
		uni("xm").put(14).op(emptyLst).put(15).op(mark).uni("m").put(16).uni("other").put(17).oid(1).put(18).get(6).op(tuple3).put(19).op(appends, persid).
		uni("xn").put(20).op(emptyLst).put(21).op(mark).uni("n").put(22).get(17).oid(2).put(23).op(tuple2).put(24).op(appends, persid).
		uni("w").put(25).op(emptyLst).put(26).op(mark).get(25).get(5).op(tuple1).put(27).op(appends, persid).
		uni("wx").put(28).op(emptyLst).put(29).op(mark).get(25).get(18).get(17).op(tuple2).put(30).op(appends, persid).
		op(setitems, 's', stop)
	data := append(pb{}.proto(3).global("persistent.mapping", "PersistentMapping").put(0).op(stop), st...)
	var s Scanner
	refs, err := s.Scan(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		form Form
		oid  uint64
		db   string
	}{{FormOidClass, 1, ""}, {FormOid, 2, ""}, {FormOidClass, 3, ""}, {FormCross, 1, "other"},
		{FormCrossNoClass, 2, "other"}, {FormWeak, 1, ""}, {FormWeakCross, 1, "other"}}
	if len(refs) != len(want) {
		t.Fatalf("got %d refs, want %d", len(refs), len(want))
	}
	local := 0
	for i, w := range want {
		r := refs[i]
		if r.Form != w.form || r.Oid != w.oid || string(r.DB) != w.db || r.Cross() != (w.db != "") {
			t.Errorf("ref %d = %+v, want %+v", i, r, w)
		}
		if r.CountsForReferencesf() {
			local++
		}
	}
	if local != 3 {
		t.Errorf("referencesf would see %d refs, want 3", local)
	}
}

var fsdumpData = regexp.MustCompile(`^  data #(\d+) oid=([0-9a-f]+)(?: size=\d+)? class=(.*?)(?: bp=[0-9a-f]+)?$`)

// TestFixtures scans every record of every fixture and checks the class
// against the fsdump output recorded with the real ZODB.
func TestFixtures(t *testing.T) {
	var s Scanner
	var refs []Ref
	checked := 0
	for _, f := range fixtureFiles(t) {
		recs := walkRecords(t, f)
		classes := map[[2]int]string{}
		if fd, err := os.Open(f + ".fsdump.txt"); err == nil {
			txn := -1
			sc := bufio.NewScanner(fd)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, "Trans #") {
					txn++
				} else if m := fsdumpData.FindStringSubmatch(line); m != nil {
					i, _ := strconv.Atoi(m[1])
					classes[[2]int{txn, i}] = m[3]
				}
			}
			fd.Close()
		}
		for _, r := range recs {
			if r.data == nil {
				continue
			}
			var err error
			if refs, err = s.Scan(r.data, refs[:0]); err != nil {
				t.Errorf("%s: oid %x at %d: %v", f, r.oid, r.pos, err)
			}
			m, n := s.Class(r.data)
			if want, ok := classes[[2]int{r.txn, r.idx}]; ok {
				checked++
				if got := string(m) + "." + string(n); got != want {
					t.Errorf("%s: record at %d: class %q, fsdump says %q", f, r.pos, got, want)
				}
			}
		}
	}
	if checked < 500 {
		t.Errorf("only %d classes checked against fsdump output", checked)
	}
}

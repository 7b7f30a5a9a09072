package commands

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
)

func run(t *testing.T, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	var out, errb bytes.Buffer
	exit = Run(append([]string{"zodbctl"}, args...), &out, &errb)
	return out.String(), errb.String(), exit
}

// validFile returns a small valid file: the magic, then one transaction
// per tid, each with one 52-byte data record (transactions 87 bytes apart).
func validFile(tids ...fsformat.Tid) []byte {
	b := append([]byte(nil), fsformat.MagicFS30[:]...)
	for _, tid := range tids {
		tpos := int64(len(b))
		h := fsformat.TxnHeader{Tid: tid, Len: 23 + 4 + 42 + 10, Status: ' ', UserLen: 4}
		b = h.AppendTo(b)
		b = append(b, "user"...)
		d := fsformat.DataHeader{Oid: 0, Tid: tid, TxnPos: tpos, DataLen: 10}
		b = d.AppendTo(b)
		b = append(b, "\x80\x03cm\nC\nq\x00."...)
		b = binary.BigEndian.AppendUint64(b, uint64(h.Len))
	}
	return b
}

// TestBadInput: every command on every kind of broken file fails cleanly:
// no panic, no hang, stderr lines that name the file, and a non-zero exit
// wherever the Python tool would not have exited 0.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	good := validFile(0x03f5945838888888, 0x03f594584ddddddd)
	setU64 := func(b []byte, off int, v uint64) []byte {
		c := append([]byte(nil), b...)
		binary.BigEndian.PutUint64(c[off:], v)
		return c
	}
	files := map[string][]byte{
		"empty.fs":       {},
		"magic.fs":       append([]byte("XXXX"), good[4:]...),
		"shorthdr.fs":    good[:4+10],
		"shortrec.fs":    good[:4+23+4+20],
		"shorttxn.fs":    good[:len(good)-3],
		"tlenpast.fs":    setU64(good, 4+8, 1<<40),
		"tlenabsurd.fs":  setU64(good, 4+8, 1<<63+5),
		"plenabsurd.fs":  setU64(good, 4+23+4+34, 1<<62),
		"tidreduce.fs":   validFile(0x03f594584ddddddd, 0x03f5945838888888),
		"garbage.fs":     append(append([]byte(nil), good...), bytes.Repeat([]byte{0xff}, 100)...),
		"onlygarbage.fs": append([]byte("FS30"), bytes.Repeat([]byte{0xa5}, 500)...),
	}
	for name, content := range files {
		if err := os.WriteFile(name, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir("adir.fs", 0o755)
	names := []string{"missing.fs", "adir.fs"}
	for n := range files {
		names = append(names, n)
	}
	commands := [][]string{{"verify"}, {"verify", "-v", "-v"}, {"fsdump"}, {"fsdump", "--verbose"}, {"fsdump", "--json"}, {"fstail"}, {"fstail", "--json"}, {"verify", "--json"},
		{"fsrefs"}, {"fsrefs", "-v", "--json"}, {"fsstats"}, {"analyze"}, {"netspace", "-v"}, {"netspace", "-P"}, {"reindex"}}
	for _, name := range names {
		for _, cmd := range commands {
			args := append(append([]string(nil), cmd...), name)
			done := make(chan struct{})
			var out, errs string
			var exit int
			go func() {
				defer close(done)
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("zodbctl %s panicked: %v", strings.Join(args, " "), p)
					}
				}()
				out, errs, exit = run(t, args...)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("zodbctl %s hangs", strings.Join(args, " "))
			}
			_ = out
			label := "zodbctl " + strings.Join(args, " ")
			for _, l := range strings.Split(strings.TrimSuffix(errs, "\n"), "\n") {
				if l != "" && !strings.Contains(l, name) && !strings.HasPrefix(l, "It appears") && l != "empty file" && l != "invalid file header" {
					t.Errorf("%s: stderr line does not name the file: %q", label, l)
				}
			}
			if cmd[0] == "verify" && exit != 1 && name != "garbage.fs" {
				t.Errorf("%s: exit %d, want 1 (stderr %q)", label, exit, errs)
			}
			// The readers that open the storage first print FileStorage's
			// scan warnings (each naming the file, as checked above).
			opensStorage := cmd[0] != "verify" && cmd[0] != "fsdump" && cmd[0] != "fstail"
			if exit != 0 && strings.Count(errs, "\n") != 1 && !(opensStorage && errs != "") {
				t.Errorf("%s: exit %d with stderr %q, want one line", label, exit, errs)
			}
			if exit == 0 && len(cmd) == 1 && cmd[0] == "fsdump" {
				// fsdump.py exits 0 after a warning on a damaged tail; there
				// must be that warning.
				if errs == "" && name != "tidreduce.fs" {
					t.Errorf("%s: exit 0 and no warning", label)
				}
			}
		}
	}
	// verify's messages are fstest's
	for name, want := range map[string]string{
		"empty.fs":      "empty file\n",
		"magic.fs":      "invalid file header\n",
		"shorthdr.fs":   "shorthdr.fs truncated at 4\n",
		"shorttxn.fs":   "shorttxn.fs truncated possibly because of damaged records at 91\n",
		"tlenpast.fs":   "tlenpast.fs truncated possibly because of damaged records at 4\n",
		"tidreduce.fs":  "tidreduce.fs time-stamp reduction at 91: 0x03f5945838888888 <= 0x03f594584ddddddd\n",
		"plenabsurd.fs": "plenabsurd.fs has data records that extend beyond the transaction record; end at 4611686018427387977\n",
		"garbage.fs":    "garbage.fs truncated possibly because of damaged records at 178\n",
	} {
		_, errs, exit := run(t, "verify", name)
		if errs != want || exit != 1 {
			t.Errorf("verify %s: exit %d, stderr %q, want %q", name, exit, errs, want)
		}
	}
}

// TestJSON checks the --json streams against the text output of the same
// commands on the basic fixture.
func TestJSON(t *testing.T) {
	t.Chdir("../testdata/fs")
	text, _, _ := run(t, "fsdump", "basic.fs")
	js, errs, exit := run(t, "fsdump", "--json", "basic.fs")
	if exit != 0 || errs != "" {
		t.Fatalf("fsdump --json: exit %d, %s", exit, errs)
	}
	transRE := regexp.MustCompile(`(?m)^Trans #\d+ tid=([0-9a-f]{16}) size=(\d+) time=\S+ \S+ offset=(\d+)$`)
	want := transRE.FindAllStringSubmatch(text, -1)
	lines := strings.Split(strings.TrimSuffix(js, "\n"), "\n")
	if len(lines) != len(want) || len(want) < 10 {
		t.Fatalf("%d JSON lines, %d transactions", len(lines), len(want))
	}
	records := 0
	for i, l := range lines {
		var tj struct {
			Tid     string `json:"tid"`
			Time    string `json:"time"`
			Size    json.Number
			DataPos json.Number `json:"data_pos"`
			Status  string
			Records []struct {
				Oid, Class, Serial string
				Size               int
				Deleted            bool
				BackTid            string `json:"back_tid"`
			}
		}
		if err := json.Unmarshal([]byte(l), &tj); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if tj.Tid != want[i][1] || tj.Size.String() != want[i][2] || tj.DataPos.String() != want[i][3] {
			t.Errorf("line %d: %s %s %s, text says %v", i+1, tj.Tid, tj.Size, tj.DataPos, want[i][1:])
		}
		if _, err := time.Parse(time.RFC3339Nano, tj.Time); err != nil {
			t.Errorf("line %d: time %q: %v", i+1, tj.Time, err)
		}
		for _, r := range tj.Records {
			records++
			if len(r.Oid) != 16 || r.Serial != tj.Tid || (r.Class == "") != r.Deleted {
				t.Errorf("line %d: record %+v", i+1, r)
			}
		}
	}
	if n := strings.Count(text, "  data #"); n != records {
		t.Errorf("%d records in JSON, %d in text", records, n)
	}
	// the extension pickle {'app': 'zodbctl-refgen', 'request': '/manage_setup'}
	// of the second transaction is decoded
	var second struct{ Extension map[string]any }
	json.Unmarshal([]byte(lines[1]), &second)
	if second.Extension["app"] != "zodbctl-refgen" || second.Extension["request"] != "/manage_setup" || len(second.Extension) != 2 {
		t.Errorf("extension of transaction 1: %v", second.Extension)
	}

	// verify --json ends with the verdict
	js, _, exit = run(t, "verify", "--json", "basic.fs")
	lines = strings.Split(strings.TrimSuffix(js, "\n"), "\n")
	if exit != 0 || lines[len(lines)-1] != `{"ok":true}` || len(lines) != len(want)+1 {
		t.Errorf("verify --json: exit %d, %d lines, last %q", exit, len(lines), lines[len(lines)-1])
	}
	js, _, exit = run(t, "verify", "--json", "damaged/basic-badtloc.fs")
	if exit != 1 || !strings.HasSuffix(js, `{"error":"damaged/basic-badtloc.fs data record exceeds transaction record at 34893: tloc 33798 != tpos 34437","ok":false,"pos":34893}`+"\n") {
		t.Errorf("verify --json damaged: exit %d, %q", exit, js[max(0, len(js)-200):])
	}

	// fstail --json: same transactions and hashes as the text
	text, _, _ = run(t, "fstail", "-n", "4", "basic.fs")
	js, _, _ = run(t, "fstail", "-n", "4", "--json", "basic.fs")
	hashRE := regexp.MustCompile(`hash=([0-9a-f]{40})`)
	hashes := hashRE.FindAllStringSubmatch(text, -1)
	sc := bufio.NewScanner(strings.NewReader(js))
	i := 0
	for sc.Scan() {
		var tj struct {
			Hash    string
			Records []json.RawMessage
		}
		if err := json.Unmarshal(sc.Bytes(), &tj); err != nil {
			t.Fatal(err)
		}
		if i >= len(hashes) || tj.Hash != hashes[i][1] {
			t.Errorf("fstail --json line %d: hash %s", i+1, tj.Hash)
		}
		i++
	}
	if i != 4 {
		t.Errorf("fstail --json: %d lines", i)
	}
}

func TestHelp(t *testing.T) {
	out, _, exit := run(t, "--help")
	if exit != 0 {
		t.Fatalf("--help: exit %d", exit)
	}
	for _, want := range []string{"fsdump", "fstail", "verify, fstest", "fsdump.py", "fstest.py"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q:\n%s", want, out)
		}
	}
	for _, cmd := range []string{"fsdump", "fstail", "verify", "fstest"} {
		out, _, exit := run(t, "help", cmd)
		if exit != 0 || !strings.Contains(out, "Example:") || !strings.Contains(out, "--json") {
			t.Errorf("help %s: exit %d\n%s", cmd, exit, out)
		}
	}
}

// TestWriterRoundTrip writes the basic fixture's transactions again through
// the Appender and checks that fsdump, verify -v -v and fstail give the
// recorded Python output on the copy.
func TestWriterRoundTrip(t *testing.T) {
	src, err := filepath.Abs("../testdata/fs/basic.fs")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "basic.fs")
	f, err := fsformat.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := fsformat.Create(dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	for txn, err := range f.Transactions(fsformat.IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Begin(fsformat.TxnMeta{Tid: txn.Tid, Status: txn.Status, User: txn.User, Description: txn.Description, Extension: txn.Extension}); err != nil {
			t.Fatal(err)
		}
		for rec, err := range txn.Records() {
			if err != nil {
				t.Fatal(err)
			}
			if rec.DataLen > 0 {
				_, err = a.Store(rec.Oid, rec.Data)
			} else {
				_, err = a.StoreBackpointer(rec.Oid, rec.Back)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for args, golden := range map[string]string{
		"fsdump":           "basic.fs.fsdump.txt",
		"fsdump --verbose": "basic.fs.fsdump-verbose.txt",
		"verify -v -v":     "basic.fs.fstest-vv.txt",
		"fstail -n 3":      "basic.fs.fstail-n3.txt",
	} {
		want, err := os.ReadFile(filepath.Join(filepath.Dir(src), golden))
		if err != nil {
			t.Fatal(err)
		}
		out, errs, exit := run(t, append(strings.Fields(args), "basic.fs")...)
		if out != string(want) || errs != "" || exit != 0 {
			t.Errorf("%s on the re-written file: exit %d, stderr %q, stdout differs: %v", args, exit, errs, out != string(want))
		}
	}
}

// TestFsdumpLargeRecords: fsdump reads only the start of each pickle; sizes
// and classes must still be those of the whole record, also through a
// backpointer and for a class description longer than the prefix.
func TestFsdumpLargeRecords(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	a, err := fsformat.Create("big.fs", nil)
	if err != nil {
		t.Fatal(err)
	}
	big := append([]byte("\x80\x03cmy.module\nBig\nq\x00.\x80\x03B\xa0\x86\x01\x00"), bytes.Repeat([]byte{'x'}, 100000)...)
	big = append(big, '.')
	longName := strings.Repeat("m", 5000)
	form3 := []byte("\x80\x03X\x88\x13\x00\x00" + longName + "q\x00X\x01\x00\x00\x00Cq\x01\x86q\x02N\x86q\x03.\x80\x03N.")
	a.Begin(fsformat.TxnMeta{Tid: 0x03f5945838888888})
	bigPos, _ := a.Store(1, big)
	a.Store(2, form3)
	a.Commit()
	a.Begin(fsformat.TxnMeta{Tid: 0x03f5945838888899})
	a.StoreBackpointer(1, bigPos)
	a.Commit()
	a.Close()
	out, errs, exit := run(t, "fsdump", "big.fs")
	want := []string{
		fmt.Sprintf("  data #00000 oid=0000000000000001 size=%d class=my.module.Big\n", len(big)),
		fmt.Sprintf("  data #00001 oid=0000000000000002 size=%d class=%s.C\n", len(form3), longName),
		fmt.Sprintf("  data #00000 oid=0000000000000001 size=%d class=my.module.Big bp=03f5945838888888\n", len(big)),
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("fsdump lacks %q:\n%.300s", w, out)
		}
	}
	if exit != 0 || errs != "" {
		t.Errorf("exit %d, stderr %q", exit, errs)
	}
}

func TestVerifyDeepFlag(t *testing.T) {
	t.Chdir("../testdata/fs/damaged")
	_, errs, exit := run(t, "verify", "--deep", "basic-badback.fs")
	if exit != 1 || errs != "basic-badback.fs invalid back pointer at 36990: 1845 is not an earlier record of oid 0x0000000000000001\n" {
		t.Errorf("verify --deep: exit %d, %q", exit, errs)
	}
	if _, errs, exit := run(t, "verify", "--deep", "../basic.packed-mid.fs"); exit != 0 || errs != "" {
		t.Errorf("verify --deep on a packed file: exit %d, %q", exit, errs)
	}
}

// TestUndoneStatus: a transaction with the obsolete status 'u' is skipped by
// fsdump (Python's iterator crashes on it), checked without its records by
// verify (as fstest), and left out of the index.
func TestUndoneStatus(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	b := validFile(0x03f5945838888888, 0x03f594584ddddddd, 0x03f5945852222222)
	b[91+16] = 'u'
	os.WriteFile("u.fs", b, 0o644)
	out, errs, exit := run(t, "fsdump", "u.fs")
	if exit != 0 || errs != "" || strings.Count(out, "Trans #") != 2 || !strings.Contains(out, "Trans #00001 tid=03f5945852222222") {
		t.Errorf("fsdump: exit %d, stderr %q\n%s", exit, errs, out)
	}
	out, errs, exit = run(t, "verify", "-v", "-v", "u.fs")
	want := "        31: object oid 0x0000000000000000 #0\n         4: transaction tid 0x03f5945838888888 #0 \n" +
		"        91: transaction tid 0x03f594584ddddddd #1 \n" +
		"       205: object oid 0x0000000000000000 #0\n       178: transaction tid 0x03f5945852222222 #2 \nno errors detected"
	if exit != 0 || errs != "" || out != want {
		t.Errorf("verify -vv: exit %d, stderr %q\n%q", exit, errs, out)
	}
	f, _ := os.Open("u.fs")
	defer f.Close()
	idx := fsformat.MapIndex{}
	var warnings []string
	if _, err := fsformat.ScanIndex(f, "u.fs", idx, func(s string) { warnings = append(warnings, s) }); err != nil || idx[0] != 205 {
		t.Errorf("ScanIndex: %v, oid 0 at %d", err, idx[0])
	}
	// the third record's prev (0) differs from the index: logged as FileStorage does
	if len(warnings) != 1 || warnings[0] != "u.fs incorrect previous pointer at 205" {
		t.Errorf("warnings %q", warnings)
	}
}

// flushCounter counts writes that end a line.
type flushCounter struct{ lines, writes int }

func (w *flushCounter) Write(p []byte) (int, error) {
	w.writes++
	if bytes.HasSuffix(p, []byte("\n")) {
		w.lines++
	}
	return len(p), nil
}

// TestJSONStreams: --json output reaches the writer line by line (so jq sees
// each transaction as it is produced), not in one block at the end.
func TestJSONStreams(t *testing.T) {
	t.Chdir("../testdata/fs")
	for _, cmd := range [][]string{{"fsdump", "--json"}, {"verify", "--json"}, {"fstail", "--json"}} {
		var w flushCounter
		var errb bytes.Buffer
		Run(append(append([]string{"zodbctl"}, cmd...), "basic.fs"), &w, &errb)
		if w.lines < 10 || w.writes != w.lines {
			t.Errorf("%v: %d writes, %d ending a line", cmd, w.writes, w.lines)
		}
	}
}

// TestVersionRecord: a legacy version record (vlen > 0) is stepped over by
// verify, as fstest does, and reported as unsupported by fsdump.
func TestVersionRecord(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	b := append([]byte(nil), fsformat.MagicFS30[:]...)
	data := []byte("\x80\x03cm\nC\nq\x00.")
	recLen := 42 + 16 + 3 + len(data)
	h := fsformat.TxnHeader{Tid: 0x03f5945838888888, Len: int64(23 + recLen), Status: ' '}
	b = h.AppendTo(b)
	d := fsformat.DataHeader{Oid: 5, Tid: h.Tid, TxnPos: 4, VersionLen: 3, DataLen: int64(len(data))}
	b = d.AppendTo(b)
	b = binary.BigEndian.AppendUint64(b, 0) // pnv
	b = binary.BigEndian.AppendUint64(b, 0) // pv
	b = append(b, "ver"...)
	b = append(b, data...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Len))
	os.WriteFile("v.fs", b, 0o644)
	out, errs, exit := run(t, "verify", "-v", "-v", "v.fs")
	if exit != 0 || errs != "" || out != "        27: object oid 0x0000000000000005 #0\n         4: transaction tid 0x03f5945838888888 #0 \nno errors detected" {
		t.Errorf("verify: exit %d, %q, %q", exit, errs, out)
	}
	_, errs, exit = run(t, "fsdump", "v.fs")
	if exit != 1 || !strings.Contains(errs, "v.fs: at 27: data record with non-zero version length 3") {
		t.Errorf("fsdump: exit %d, %q", exit, errs)
	}
	// the Dumper prints the fields it read before its assertion fails
	out, errs, exit = run(t, "fsdump", "--verbose", "v.fs")
	if exit != 1 || !strings.HasSuffix(out, "offset: 27\noid: 0000000000000005\nrevid: 03f5945838888888\nprevious record offset: 0\ntransaction offset: 4\n") || strings.Count(errs, "\n") != 1 {
		t.Errorf("fsdump --verbose: exit %d, %q, stdout:\n%s", exit, errs, out)
	}
}

// TestUnknownCommand: a mistyped command is a usage error (exit 2, one
// line), not cli's "No help topic" with exit 3 (which here means "not
// running").
func TestUnknownCommand(t *testing.T) {
	out, errs, exit := run(t, "fsdumb", "Data.fs")
	if exit != ExitUsage || out != "" || errs != "zodbctl: unknown command \"fsdumb\" (zodbctl --help lists them)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", exit, out, errs)
	}
	if out, _, exit := run(t); exit != 0 || !strings.Contains(out, "COMMANDS:") {
		t.Errorf("no arguments: exit %d, %q", exit, out)
	}
}

package commands

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/client"
	"github.com/zodbctl/zodbctl/zeowire/fsstore"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
	"github.com/zodbctl/zodbctl/zeowire/zeotest"
)

// connZeoServer is an in-process zeowire.Server on 127.0.0.1:0.
func connectRun(args ...string) (string, string, int) {
	var o, e bytes.Buffer
	code := Run(append([]string{"zodbctl", "connect"}, args...), &o, &e)
	return o.String(), e.String(), code
}

// connMemFromFile loads every transaction of a Data.fs into a memstore, with
// the file's tids, statuses, metadata and backpointers.
func connMemFromFile(t testing.TB, path string) *memstore.Store {
	t.Helper()
	f, err := fsformat.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := memstore.New(path)
	ctx := context.Background()
	for txn, err := range f.Transactions(fsformat.IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		meta := zeowire.TxnMeta{Tid: zeowire.Tid(txn.Tid), Status: txn.Status,
			User: bytes.Clone(txn.User), Description: bytes.Clone(txn.Description)}
		if len(txn.Extension) > 0 {
			d := pickle.NewDecoder(txn.Extension)
			v, err := d.Decode()
			if err != nil {
				t.Fatal(err)
			}
			meta.Extension = v.(pickle.Dict)
		}
		stx, err := st.Begin(ctx, meta)
		if err != nil {
			t.Fatal(err)
		}
		for rec, err := range txn.Records() {
			if err != nil {
				t.Fatal(err)
			}
			var prev zeowire.Tid
			var data []byte
			if rec.DataLen > 0 {
				data = bytes.Clone(rec.Data)
			} else if rec.Back != 0 {
				h, err := f.ReadDataHeaderAt(rec.Back)
				if err != nil {
					t.Fatal(err)
				}
				prev = zeowire.Tid(h.Tid)
			}
			if err := stx.Restore(zeowire.Oid(rec.Oid), zeowire.Tid(txn.Tid), data, prev); err != nil {
				t.Fatal(err)
			}
		}
		if err := stx.Vote(); err != nil {
			t.Fatal(err)
		}
		if err := stx.Finish(); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

const connBasicFS = "../testdata/fs/basic.fs"

// connJsonLinesOf parses JSON Lines output.
func connJsonLinesOf(t *testing.T, out string) []map[string]any {
	t.Helper()
	var res []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		res = append(res, m)
	}
	return res
}

func TestConnectTransactionsAgreesWithFsdump(t *testing.T) {
	zeotest.BothEncodings(t, func(t *testing.T, msgpack bool) {
		zeotest.NoLeaks(t)
		s := zeotest.Start(t, msgpack, connMemFromFile(t, connBasicFS))
		out, errOut, code := connectRun("-s", s.Addr, "transactions", "--json")
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		fsOut, _, code := connFsdumpJSON(t, connBasicFS)
		if code != 0 {
			t.Fatal("fsdump failed")
		}
		want := connAgreesWithFsdump(t, out, fsOut)
		sawBp, sawDeleted, sawExt := false, false, false
		for i := range want {
			_, e := want[i]["extension"]
			sawExt = sawExt || e
			for _, r := range want[i]["records"].([]any) {
				_, bp := r.(map[string]any)["back_tid"]
				_, del := r.(map[string]any)["deleted"]
				sawBp, sawDeleted = sawBp || bp, sawDeleted || del
			}
		}
		if !sawBp || !sawDeleted || !sawExt {
			t.Errorf("fixture lacks a case: bp %v deleted %v extension %v", sawBp, sawDeleted, sawExt)
		}

		// Text: fsdump's lines without offsets and transaction sizes.
		out, _, code = connectRun("-s", s.Addr, "transactions")
		fsText, err := os.ReadFile("../testdata/fs/basic.fs.fsdump.txt")
		if err != nil || code != 0 {
			t.Fatal(err, code)
		}
		wantText := regexp.MustCompile(`(?m)^(Trans #\d+ tid=\w+) size=\d+ (time=.*) offset=\d+$`).ReplaceAllString(string(fsText), "$1 $2")
		gotText := regexp.MustCompile(`(?m) extension=.*$`).ReplaceAllString(out, "")
		if gotText != wantText {
			t.Errorf("text:\n%s\nwant\n%s", gotText, wantText)
		}
		if !strings.Contains(out, " extension={") {
			t.Errorf("no extension shown in text")
		}

		// A range: --since/--until are inclusive.
		tids := []string{want[2]["tid"].(string), want[4]["tid"].(string)}
		out, _, code = connectRun("-s", s.Addr, "transactions", "--json", "--since", tids[0], "--until", tids[1])
		if r := connJsonLinesOf(t, out); code != 0 || len(r) != 3 || r[0]["tid"] != tids[0] || r[2]["tid"] != tids[1] {
			t.Errorf("range: exit %d %s", code, out)
		}
	})
}

// connAgreesWithFsdump checks that connect transactions --json output equals
// fsdump --json output on every field but the file offsets and sizes; it
// returns fsdump's objects.
func connAgreesWithFsdump(t *testing.T, out, fsOut string) []map[string]any {
	t.Helper()
	got := connJsonLinesOf(t, out)
	want := connJsonLinesOf(t, fsOut)
	for _, w := range want {
		delete(w, "pos")
		delete(w, "size")
		delete(w, "data_pos")
		for _, r := range w["records"].([]any) {
			rm := r.(map[string]any)
			delete(rm, "pos")
			delete(rm, "prev")
			delete(rm, "back_pointer")
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d transactions, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			g, _ := json.Marshal(got[i])
			w, _ := json.Marshal(want[i])
			t.Errorf("transaction %d:\n got %.500s\nwant %.500s", i, g, w)
		}
	}
	return want
}

func connFsdumpJSON(t *testing.T, path string) (string, string, int) {
	var o, e bytes.Buffer
	code := Run([]string{"zodbctl", "fsdump", "--json", path}, &o, &e)
	return o.String(), e.String(), code
}

func TestConnectSubcommands(t *testing.T) {
	zeotest.BothEncodings(t, func(t *testing.T, msgpack bool) {
		zeotest.NoLeaks(t)
		st := connMemFromFile(t, connBasicFS)
		s := zeotest.Start(t, msgpack, st)
		ctx := context.Background()
		last := st.LastTransaction()
		letter := "Z"
		if msgpack {
			letter = "M"
		}

		out, errOut, code := connectRun("-s", s.Addr, "last-tid")
		if code != 0 || out != last.String()+"\n" || errOut != "" {
			t.Errorf("last-tid: %d %q %q", code, out, errOut)
		}
		out, _, _ = connectRun("-s", s.Addr, "last-tid", "--json")
		if j := connJsonLinesOf(t, out); j[0]["tid"] != last.String() || !strings.HasPrefix(j[0]["time"].(string), "2024-") {
			t.Errorf("last-tid --json: %s", out)
		}

		out, _, code = connectRun("-s", s.Addr, "info")
		info := st.Info()
		for _, want := range []string{"address: " + s.Addr + "\n", "storage: 1\n", "name: " + connBasicFS + "\n",
			"length: " + connItoa(info.Length) + "\n", "size: " + connItoa(info.Size) + "\n",
			"last-transaction: " + last.String() + " " + fsformat.Tid(last).Time().String() + "\n",
			"read-only: false\n", "protocol: " + letter + "5\n", "ZODB.interfaces.IStorageIteration"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("info lacks %q:\n%s", want, out)
			}
		}
		out, _, code = connectRun("-s", s.Addr, "info", "--json")
		if j := connJsonLinesOf(t, out); code != 0 || j[0]["last_tid"] != last.String() || j[0]["read_only"] != false || j[0]["protocol"] != letter+"5" {
			t.Errorf("info --json: %s", out)
		}

		out, _, code = connectRun("-s", s.Addr, "status")
		if code != 0 || !strings.Contains(out, "\nconnections: ") || !strings.Contains(out, "\nlast-transaction: "+last.String()+"\n") ||
			!strings.Contains(out, "\nlock_time: None\n") {
			t.Errorf("status: %s", out)
		}
		out, _, code = connectRun("-s", s.Addr, "status", "--json")
		if code != 0 || !regexp.MustCompile(`^\{"address":"`+s.Addr+`","storage":"1","status":\{"connections":\d+,"loads":`).MatchString(out) {
			t.Errorf("status --json: %s", out)
		}
		out, _, code = connectRun("-s", s.Addr, "status", "--ruok", "--json")
		if code != 0 || !regexp.MustCompile(`^\{"1": \{"connections": \d+, "loads": `).MatchString(out) {
			t.Errorf("ruok --json: %s", out)
		}
		out, _, code = connectRun("-s", s.Addr, "status", "--ruok")
		if code != 0 || !strings.HasPrefix(out, "address: "+s.Addr+"\nstorage 1:\n  connections: ") || !strings.Contains(out, "  lock_time: None\n") {
			t.Errorf("ruok: %s", out)
		}

		// load: raw bytes, --at, --decode, --json.
		rev, _, err := st.LoadBefore(ctx, 1, zeowire.MaxTid)
		if err != nil {
			t.Fatal(err)
		}
		out, _, code = connectRun("-s", s.Addr, "load", "1")
		if code != 0 || out != string(rev.Data) {
			t.Errorf("load: %d %q", code, out)
		}
		h, err := st.History(ctx, 1, 10)
		if err != nil || len(h) < 2 {
			t.Fatal("oid 1 needs two revisions", err)
		}
		old, _, _ := st.LoadBefore(ctx, 1, h[0].Tid)
		out, _, code = connectRun("-s", s.Addr, "load", "0x01", "--at", h[1].Tid.String())
		if code != 0 || out != string(old.Data) {
			t.Errorf("load --at: %d %q", code, out)
		}
		out, _, code = connectRun("-s", s.Addr, "load", "1", "--json")
		j := connJsonLinesOf(t, out)
		if b, _ := base64.StdEncoding.DecodeString(j[0]["data_base64"].(string)); code != 0 || string(b) != string(rev.Data) || j[0]["tid"] != rev.Start.String() {
			t.Errorf("load --json: %s", out)
		}
		out, _, code = connectRun("-s", s.Addr, "load", "0", "--decode")
		if code != 0 || !strings.Contains(out, "\nclass: persistent.mapping.PersistentMapping\nstate: {'data': {") {
			t.Errorf("load --decode: %s", out)
		}

		out, _, code = connectRun("-s", s.Addr, "history", "1", "-n", "2")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], h[0].Tid.String()+" ") ||
			!strings.Contains(lines[1], " description="+connQuoteBytes(h[1].Description)) {
			t.Errorf("history: %s", out)
		}
		out, _, code = connectRun("-s", s.Addr, "history", "1", "--json")
		if j := connJsonLinesOf(t, out); code != 0 || len(j) != len(h) || j[0]["tid"] != h[0].Tid.String() || j[0]["size"] != float64(h[0].Size) {
			t.Errorf("history --json: %s", out)
		}

		out, _, code = connectRun("-s", s.Addr, "cat", "0")
		if code != 0 || !strings.Contains(out, "class: persistent.mapping.PersistentMapping\n") ||
			!strings.Contains(out, "attributes:\n  data: {") || !strings.Contains(out, "references:\n  0000000000000001") ||
			!strings.Contains(out, "<ref 0000000000000001 ") {
			t.Errorf("cat: %s", out)
		}
		out, _, code = connectRun("-s", s.Addr, "cat", "0", "--json")
		if j := connJsonLinesOf(t, out); code != 0 || j[0]["class"] != "persistent.mapping.PersistentMapping" || len(j[0]["references"].([]any)) == 0 {
			t.Errorf("cat --json: %s", out)
		}

		// copy: the same transactions, verified; fsdump of the copy is
		// fsdump of the original, offsets included.
		dest := filepath.Join(t.TempDir(), "copy.fs")
		out, _, code = connectRun("-s", s.Addr, "copy", dest)
		if code != 0 || !strings.HasPrefix(out, "copied ") {
			t.Fatalf("copy: %d %s", code, out)
		}
		if !msgpack {
			orig, _ := os.ReadFile(connBasicFS)
			cp, _ := os.ReadFile(dest)
			if !bytes.Equal(orig, cp) {
				t.Errorf("the copy is not byte-identical to the original (%d and %d bytes)", len(orig), len(cp))
			}
		} else {
			// msgpack has no tuple/list distinction: an extension list
			// comes back a tuple and pickles 2 bytes shorter, so only the
			// offset-free fields can agree.
			a, _, _ := connFsdumpJSON(t, connBasicFS)
			b, _, _ := connFsdumpJSON(t, dest)
			strip := regexp.MustCompile(`"(pos|size|data_pos|prev|back_pointer)":\d+,?`)
			if strip.ReplaceAllString(a, "") != strip.ReplaceAllString(b, "") {
				t.Errorf("the copy differs from the original")
			}
		}
		_, errOut, code = connectRun("-s", s.Addr, "copy", dest)
		if code != 1 || errOut != "zodbctl connect: copy: "+dest+" already exists (use --force to replace it)\n" {
			t.Errorf("copy over: %d %q", code, errOut)
		}
		_, _, code = connectRun("-s", s.Addr, "copy", "--force", "--json", "--since", h[0].Tid.String(), dest)
		if code != 0 {
			t.Errorf("copy --since: %d", code)
		}

		out, _, code = connectRun("-s", s.Addr, "pack", "--days", "1")
		if code != 0 || !regexp.MustCompile(`^packed storage 1 at \S+ to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC in \d+\.\d{3}s\n$`).MatchString(out) {
			t.Errorf("pack: %d %q", code, out)
		}
		out, _, code = connectRun("-s", s.Addr, "pack", "--json", "--time", "2024-03-04T09:16:00Z")
		if j := connJsonLinesOf(t, out); code != 0 || j[0]["pack_time"] != "2024-03-04T09:16:00Z" {
			t.Errorf("pack --json: %s", out)
		}

		out, _, code = connectRun("-s", s.Addr, "check", "--nowrite")
		if code != 0 || !regexp.MustCompile(`^Elapsed time: \d+\.\d\d\n$`).MatchString(out) {
			t.Errorf("check --nowrite: %d %q", code, out)
		}
		before := st.LastTransaction()
		out, _, code = connectRun("-s", s.Addr, "check", "--json")
		j = connJsonLinesOf(t, out)
		if code != 0 || j[0]["status"] != "healthy" || j[0]["wrote"] != true || j[0]["mode"] != "zeoup" || st.LastTransaction() <= before {
			t.Errorf("check: %d %s", code, out)
		}
		// basic.fs's root got 'monitor' appended, everything else intact.
		oldRoot, _, _ := st.LoadBefore(ctx, 0, before+1)
		newRoot, _, _ := st.LoadBefore(ctx, 0, zeowire.MaxTid)
		oldState, newState := connState(t, oldRoot.Data), connState(t, newRoot.Data)
		want := strings.TrimSuffix(oldState, "}}") + ", 'monitor': <ref "
		if !strings.HasPrefix(newState, want) || !strings.HasSuffix(newState, " persistent.mapping.PersistentMapping>}}") {
			t.Errorf("root after check:\n%s\nwas\n%s", newState, oldState)
		}
	})
}

// connState is the decoded state pickle of a record, as pyRepr shows it.
func connState(t *testing.T, data []byte) string {
	t.Helper()
	d := pickle.NewDecoder(data)
	d.FindGlobal = pickle.AnyGlobal
	cls, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	return pyRepr(cls) + " " + pyRepr(st)
}

func connItoa(n int64) string { return string(connAppendInt(nil, n)) }

func connAppendInt(b []byte, n int64) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	if n >= 10 {
		b = connAppendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func connQuoteBytes(b []byte) string {
	return "b'" + string(b) + "'"
}

func TestConnectCheckEmptyAndReadOnly(t *testing.T) {
	zeotest.NoLeaks(t)
	st := memstore.New("empty")
	s := zeotest.Start(t, false, st)
	out, _, code := connectRun("-s", s.Addr, "check", "--nowrite")
	if code != 1 || !strings.HasPrefix(out, "POSKeyError: "+s.Addr+": loadBefore: ") {
		t.Errorf("empty nowrite: %d %q", code, out)
	}
	out, _, code = connectRun("-s", s.Addr, "check")
	if code != 0 || !strings.HasPrefix(out, "Elapsed time: ") {
		t.Errorf("empty write: %d %q", code, out)
	}
	// The records zeoup writes on an empty storage (zeo-admin-tools.md
	// §5.2), after the root ZODB creates in its own transaction.
	ctx := context.Background()
	wantStates := []string{
		"persistent.mapping.PersistentMapping {'data': {'monitor': <ref 0000000000000001 persistent.mapping.PersistentMapping>}}",
		"persistent.mapping.PersistentMapping {'data': {'zeoup': <ref 0000000000000002 ZODB.tests.MinPO.MinPO>}}",
		"ZODB.tests.MinPO.MinPO {'value': 1}",
	}
	for i, want := range wantStates {
		rev, _, err := st.LoadBefore(ctx, zeowire.Oid(i), zeowire.MaxTid)
		if err != nil || connState(t, rev.Data) != want {
			t.Errorf("oid %d: %v %s, want %s", i, err, connState(t, rev.Data), want)
		}
	}
	if h, _ := st.History(ctx, 0, 10); len(h) != 2 || string(h[1].Description) != "initial database creation" {
		t.Errorf("root history %+v", h)
	}
	first, _, _ := st.LoadBefore(ctx, 0, st.LastTransaction())
	if !bytes.Equal(first.Data, emptyRootRecord) {
		t.Errorf("initial root %q", first.Data)
	}
	// Again: only the counter changes.
	last := st.LastTransaction()
	out, _, code = connectRun("-s", s.Addr, "check", "--json")
	if j := connJsonLinesOf(t, out); code != 0 || j[0]["mode"] != "zeoup" {
		t.Errorf("second check: %d %s", code, out)
	}
	rev, _, _ := st.LoadBefore(ctx, 2, zeowire.MaxTid)
	if h, _ := st.History(ctx, 0, 10); len(h) != 2 || connState(t, rev.Data) != "ZODB.tests.MinPO.MinPO {'value': 2}" || rev.Start <= last {
		t.Errorf("second check wrote %s", connState(t, rev.Data))
	}
	// A root zodbctl cannot re-pickle exactly is stored again unchanged.
	odd := connMemFromFile(t, connBasicFS)
	odd2 := zeotest.Start(t, false, odd)
	rootRev, _, _ := odd.LoadBefore(ctx, 0, zeowire.MaxTid)
	// Same state, but with a memo PUT the C pickler would not write.
	weird := append(bytes.Clone(rootRev.Data[:len(rootRev.Data)-1]), 'p', '9', '9', '\n', '0', '.')
	cl, err := client.Connect(ctx, client.Options{Addrs: []string{odd2.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Commit(ctx, nil, nil, nil, []client.Store{{Oid: 0, Serial: rootRev.Start, Data: weird}}); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	out, _, code = connectRun("-s", odd2.Addr, "check", "--json")
	rootNow, _, _ := odd.LoadBefore(ctx, 0, zeowire.MaxTid)
	if j := connJsonLinesOf(t, out); code != 0 || j[0]["mode"] != "rewrite-root" || !bytes.Equal(rootNow.Data, weird) {
		t.Errorf("odd root: %d %s", code, out)
	}

	ro := zeotest.Start(t, true, st, func(s *zeowire.Server) { s.ReadOnly = true })
	out, _, code = connectRun("-s", ro.Addr, "check")
	if code != 1 || out != "ReadOnlyError: "+ro.Addr+": register storage \"1\": read-only server or storage\n" {
		t.Errorf("read-only: %d %q", code, out)
	}
	out, _, code = connectRun("-s", ro.Addr, "check", "--nowrite")
	if code != 0 {
		t.Errorf("read-only nowrite: %d %q", code, out)
	}
	out, _, code = connectRun("-s", connDeadTCP(t), "check", "--json")
	if code != 2 || !strings.Contains(out, `"status":"unreachable"`) {
		t.Errorf("unreachable: %d %q", code, out)
	}
}

func connDeadTCP(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestConnectErrors(t *testing.T) {
	zeotest.NoLeaks(t)
	st := connMemFromFile(t, connBasicFS)
	s := zeotest.Start(t, false, st)
	dead := connDeadTCP(t)
	cases := []struct {
		args   []string
		code   int
		stderr string // regexp
	}{
		{[]string{"-s", dead, "info"}, 3, `^zodbctl connect: ` + regexp.QuoteMeta(dead) + `: connect: dial tcp [^\n]*connection refused\n$`},
		{[]string{"-s", dead + "," + dead, "last-tid"}, 3, `^zodbctl connect: \S+: connect: [^\n]*; \S+: connect: [^\n]*\n$`},
		{[]string{"-s", s.Addr, "-S", "nope", "info"}, 4, `^zodbctl connect: ` + regexp.QuoteMeta(s.Addr) + `: register storage "nope": unknown storage\n$`},
		{[]string{"-s", s.Addr, "load", "ffff"}, 5, `^zodbctl connect: ` + regexp.QuoteMeta(s.Addr) + `: loadBefore: no such object: oid 000000000000ffff\n$`},
		{[]string{"-s", s.Addr, "load", "1", "--at", "0000000000000001"}, 5, `: loadBefore: oid 0000000000000001: no revision at or before that tid 0000000000000001\n$`},
		{[]string{"-s", s.Addr, "history", "ffff"}, 5, `: history: no such object`},
		{[]string{"-s", s.Addr, "load", "xyz"}, 2, `^zodbctl: connect: invalid oid "xyz"`},
		{[]string{"-s", s.Addr, "load"}, 2, `^zodbctl: connect load: expected one OID argument\n$`},
		{[]string{"info"}, 2, `^zodbctl: connect: no server: use -s`},
		{[]string{"-s", "a:b:c", "info"}, 2, `^zodbctl: connect: invalid server address "a:b:c"`},
		{[]string{"-s", s.Addr, "transactions", "--since", "12"}, 0, `^$`},
		{[]string{"-s", s.Addr, "transactions", "--until", "zz"}, 2, `invalid tid "zz"`},
		{[]string{"-s", s.Addr, "pack", "--time", "25:00"}, 2, `^zodbctl: connect pack: invalid --time "25:00": expected HH\[:MM\[:SS\]\]\n$`},
		{[]string{"-s", s.Addr, "info", "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		_, errOut, code := connectRun(tc.args...)
		if code != tc.code || !regexp.MustCompile(tc.stderr).MatchString(errOut) {
			t.Errorf("%v: exit %d %q, want %d %s", tc.args, code, errOut, tc.code, tc.stderr)
		}
	}
	// --wait says what it waits for, then gives up.
	_, errOut, code := connectRun("-s", dead, "--wait", "600ms", "info")
	if code != 3 || !strings.HasPrefix(errOut, "zodbctl connect: waiting for a ZEO server at "+dead+": retrying in 500ms") ||
		!strings.Contains(errOut, "(gave up after waiting 6") {
		t.Errorf("wait: %d %q", code, errOut)
	}
	// zeopack's HOST:PORT:NAME.
	_, errOut, code = connectRun("-s", s.Addr+":nope", "last-tid")
	if code != exitConnRefused || errOut != "zodbctl connect: "+s.Addr+`: register storage "nope": unknown storage`+"\n" {
		t.Errorf("HOST:PORT:NAME: %d %q", code, errOut)
	}
	out, _, code := connectRun("-s", s.Addr+":1", "last-tid")
	if code != 0 || out != st.LastTransaction().String()+"\n" {
		t.Errorf("HOST:PORT:1: %d %q", code, out)
	}
	_, errOut, code = connectRun("-s", s.Addr+":1,"+s.Addr+":2", "last-tid")
	if code != ExitUsage || !strings.Contains(errOut, "name different storages") {
		t.Errorf("two names: %d %q", code, errOut)
	}
	// The server address can come from the environment.
	t.Setenv("ZODBCTL_SERVER", dead+","+s.Addr)
	out, _, code = connectRun("last-tid")
	if code != 0 || out != st.LastTransaction().String()+"\n" {
		t.Errorf("env + failover: %d %q", code, out)
	}
}

// connFailingStore fails iteration after a few transactions.
type connFailingStore struct {
	*memstore.Store
	after int
}

type connFailingIter struct {
	zeowire.TxnIterator
	left int
}

func (s *connFailingStore) Iterate(ctx context.Context, start, stop zeowire.Tid) (zeowire.TxnIterator, error) {
	it, err := s.Store.Iterate(ctx, start, stop)
	return &connFailingIter{it, s.after}, err
}

func (it *connFailingIter) Next() (zeowire.TxnMeta, []zeowire.DataRecord, bool, error) {
	if it.left == 0 {
		return zeowire.TxnMeta{}, nil, false, errors.New("disk on fire")
	}
	it.left--
	return it.TxnIterator.Next()
}

func TestConnectCopyFailureLeavesNothing(t *testing.T) {
	zeotest.NoLeaks(t)
	s := zeotest.Start(t, true, &connFailingStore{connMemFromFile(t, connBasicFS), 3})
	dir := t.TempDir()
	dest := filepath.Join(dir, "Data.fs")
	_, errOut, code := connectRun("-s", s.Addr, "copy", dest)
	if code != 1 || !strings.HasPrefix(errOut, "zodbctl connect: "+s.Addr+": iterator: ") || !strings.Contains(errOut, "disk on fire") {
		t.Errorf("copy: %d %q", code, errOut)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// connSyncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type connSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *connSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *connSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func connWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func connCommitOne(t *testing.T, addr string, oid zeowire.Oid, serial zeowire.Tid) zeowire.Tid {
	t.Helper()
	cl, err := client.Connect(context.Background(), client.Options{Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tid, err := cl.Commit(context.Background(), nil, nil, nil, []client.Store{{Oid: oid, Serial: serial, Data: emptyRootRecord}})
	if err != nil {
		t.Fatal(err)
	}
	return tid
}

func TestConnectWatchFailoverAndInterrupt(t *testing.T) {
	// os/signal starts its one process-wide goroutine on first use: start
	// it before counting goroutines.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGUSR2)
	zeotest.BothEncodings(t, func(t *testing.T, msgpack bool) {
		zeotest.NoLeaks(t)
		st := memstore.New("w")
		s1 := zeotest.Start(t, msgpack, st)
		s2 := zeotest.Start(t, msgpack, st)
		var out, errOut connSyncBuffer
		done := make(chan int, 1)
		go func() {
			done <- Run([]string{"zodbctl", "connect", "-s", s1.Addr + "," + s2.Addr, "watch", "--count", "3"}, &out, &errOut)
		}()
		connWaitFor(t, "watch to start", func() bool { return strings.Contains(errOut.String(), "watching storage 1 at "+s1.Addr) })
		tid1 := connCommitOne(t, s1.Addr, 7, 0)
		connWaitFor(t, "first invalidation", func() bool { return strings.Count(out.String(), "\n") == 1 })
		s1.Stop()
		connWaitFor(t, "failover", func() bool { return strings.Contains(errOut.String(), "watching storage 1 at "+s2.Addr) })
		tid2 := connCommitOne(t, s2.Addr, 7, tid1)
		tid3 := connCommitOne(t, s2.Addr, 8, 0)
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit %d: %s", code, errOut.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watch did not end: %q %q", out.String(), errOut.String())
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		want := []string{tid1.String() + " " + fsformat.Tid(tid1).Time().String() + " 0000000000000007",
			tid2.String() + " " + fsformat.Tid(tid2).Time().String() + " 0000000000000007",
			tid3.String() + " " + fsformat.Tid(tid3).Time().String() + " 0000000000000008"}
		// tid2 may arrive live or, if committed before the watcher
		// re-registered, as a catch-up line.
		if len(lines) != 3 || lines[0] != want[0] || strings.Replace(lines[1], " (missed while disconnected)", "", 1) != want[1] {
			t.Errorf("watch:\n%s\nwant\n%s", out.String(), strings.Join(want, "\n"))
		}

		// SIGINT ends it cleanly.
		var out2, err2 connSyncBuffer
		go func() {
			done <- Run([]string{"zodbctl", "connect", "-s", s2.Addr, "watch", "--json"}, &out2, &err2)
		}()
		connWaitFor(t, "watch to start", func() bool { return strings.Contains(err2.String(), "watching storage 1 at "+s2.Addr) })
		tid4 := connCommitOne(t, s2.Addr, 9, 0)
		connWaitFor(t, "invalidation", func() bool { return strings.Contains(out2.String(), "\n") })
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit after SIGINT %d", code)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch ignored SIGINT")
		}
		if j := connJsonLinesOf(t, out2.String()); len(j) != 1 || j[0]["tid"] != tid4.String() || j[0]["oids"].([]any)[0] != "0000000000000009" {
			t.Errorf("watch --json: %s", out2.String())
		}
	})
}

// TestConnectFileStorage runs against the FileStorage the serve command
// serves: transactions --json agrees with fsdump --json of the very file,
// and a copy is byte-identical to it (pickle mode).
func TestConnectFileStorage(t *testing.T) {
	zeotest.BothEncodings(t, func(t *testing.T, msgpack bool) {
		zeotest.NoLeaks(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "Data.fs")
		orig, err := os.ReadFile(connBasicFS)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, orig, 0o644)
		st, err := fsstore.Open(path, fsstore.Options{PackGC: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s := zeotest.Start(t, msgpack, st)
		defer s.Stop() // before st.Close

		out, errOut, code := connectRun("-s", s.Addr, "transactions", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		fsOut, _, _ := connFsdumpJSON(t, path)
		connAgreesWithFsdump(t, out, fsOut)

		dest := filepath.Join(dir, "copy.fs")
		if _, errOut, code := connectRun("-s", s.Addr, "copy", dest); code != 0 {
			t.Fatalf("copy: %d %s", code, errOut)
		}
		if cp, _ := os.ReadFile(dest); !msgpack && !bytes.Equal(cp, orig) {
			t.Errorf("copy of the served file is not byte-identical")
		}

		// A commit through check, then the file verifies and the last tid moved.
		last := st.LastTransaction()
		if out, _, code := connectRun("-s", s.Addr, "check"); code != 0 {
			t.Fatalf("check: %d %s", code, out)
		}
		out, _, _ = connectRun("-s", s.Addr, "last-tid")
		if out == last.String()+"\n" {
			t.Errorf("check did not commit")
		}
		out, _, code = connectRun("-s", s.Addr, "pack")
		if code != 0 || !strings.HasPrefix(out, "packed storage 1 at ") {
			t.Errorf("pack: %d %s", code, out)
		}
		out, _, code = connectRun("-s", s.Addr, "info", "--json")
		if j := connJsonLinesOf(t, out); code != 0 || j[0]["name"] != path || j[0]["supports_undo"] != true {
			t.Errorf("info: %s", out)
		}
	})
}

// connStallingStore stops its server in the middle of an iteration.
type connStallingStore struct {
	*memstore.Store
	after int
	stop  func()
}

type connStallingIter struct {
	zeowire.TxnIterator
	s *connStallingStore
}

func (s *connStallingStore) Iterate(ctx context.Context, start, stop zeowire.Tid) (zeowire.TxnIterator, error) {
	it, err := s.Store.Iterate(ctx, start, stop)
	return &connStallingIter{it, s}, err
}

func (it *connStallingIter) Next() (zeowire.TxnMeta, []zeowire.DataRecord, bool, error) {
	if it.s.after--; it.s.after == 0 {
		go it.s.stop()
		time.Sleep(300 * time.Millisecond) // the connection is closed meanwhile
	}
	return it.TxnIterator.Next()
}

func TestConnectServerGoesAwayMidCommand(t *testing.T) {
	zeotest.NoLeaks(t)
	st := &connStallingStore{Store: connMemFromFile(t, connBasicFS), after: 4}
	s := zeotest.Start(t, false, st)
	st.stop = s.Stop
	dir := t.TempDir()
	dest := filepath.Join(dir, "Data.fs")
	_, errOut, code := connectRun("-s", s.Addr, "copy", dest)
	if code != exitConnLost || !strings.HasPrefix(errOut, "zodbctl connect: "+s.Addr+": iterator: connection lost: ") ||
		!strings.Contains(errOut, "reconnecting: "+s.Addr+": connect: ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("copy: %d %q", code, errOut)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestConnectConfigFile(t *testing.T) {
	zeotest.NoLeaks(t)
	st := connMemFromFile(t, connBasicFS)
	s := zeotest.Start(t, true, st, func(srv *zeowire.Server) {
		srv.Storages = map[string]zeowire.Storage{"main": st}
	})
	conf := filepath.Join(t.TempDir(), "zope.conf")
	os.WriteFile(conf, []byte(`%define INSTANCE /tmp
instancehome $INSTANCE
<zodb_db temp>
  <temporarystorage>
    name Temporary database (for sessions)
  </temporarystorage>
  mount-point /temp_folder
</zodb_db>
<zodb_db main>
  mount-point /
  <zeoclient>
    server `+connDeadTCP(t)+`
    server `+s.Addr+`
    storage main
    name zeostorage
  </zeoclient>
</zodb_db>
`), 0o644)
	out, errOut, code := connectRun("-C", conf, "--db", "main", "last-tid")
	if code != 0 || out != st.LastTransaction().String()+"\n" {
		t.Errorf("-C: %d %q %q", code, out, errOut)
	}
	_, errOut, code = connectRun("-C", conf, "--db", "temp", "info")
	if code != 1 || errOut != "zodbctl connect: "+conf+`: database "temp" does not use a ZEO client storage (<zeoclient> or <clientstorage>)`+"\n" {
		t.Errorf("temp: %d %q", code, errOut)
	}
	_, errOut, code = connectRun("-C", conf, "--db", "nope", "info")
	if code != 1 || errOut != "zodbctl connect: "+conf+": no <zodb nope> section\n" {
		t.Errorf("nope: %d %q", code, errOut)
	}
}

func TestConnectHelp(t *testing.T) {
	out, _, code := connectRun("--help")
	for _, want := range []string{"Exit status:", "3  no server answered", "4  the server refused the registration",
		"5  no such object", "6  the connection broke", "check: 0 healthy, 1 unhealthy, 2 unreachable", "ZODBCTL_SERVER"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// connWriteCerts writes a CA, a server certificate for 127.0.0.1 and a
// client certificate (PEM) into dir.
func connWriteCerts(t *testing.T, dir string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey := newKey()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range []string{"server", "client"} {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		if name == "server" {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		kder, _ := x509.MarshalECPrivateKey(k)
		write(name+".key", "EC PRIVATE KEY", kder)
	}
}

func TestConnectTLS(t *testing.T) {
	zeotest.NoLeaks(t)
	dir := t.TempDir()
	connWriteCerts(t, dir)
	p := func(n string) string { return filepath.Join(dir, n) }
	tc, err := zeowire.ServerTLSConfig(p("server.pem"), p("server.key"), p("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	st := connMemFromFile(t, connBasicFS)
	s := zeotest.Start(t, false, st, func(srv *zeowire.Server) { srv.TLSConfig = tc })
	out, errOut, code := connectRun("-s", s.Addr, "--tls-ca", p("ca.pem"), "--tls-cert", p("client.pem"), "--tls-key", p("client.key"), "last-tid")
	if code != 0 || out != st.LastTransaction().String()+"\n" {
		t.Errorf("TLS: %d %q %q", code, out, errOut)
	}
	// The server requires a client certificate.
	_, errOut, code = connectRun("-s", s.Addr, "--tls-ca", p("ca.pem"), "last-tid")
	if code != exitConnUnreachable || !strings.HasPrefix(errOut, "zodbctl connect: "+s.Addr+": connect: ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("no client certificate: %d %q", code, errOut)
	}
	// A plain client gets nowhere either.
	_, errOut, code = connectRun("-s", s.Addr, "--timeout", "1s", "last-tid")
	if code != exitConnUnreachable || !strings.HasPrefix(errOut, "zodbctl connect: "+s.Addr+": connect: ") {
		t.Errorf("plain client: %d %q", code, errOut)
	}
}

func TestConnectUnixAndIPv6(t *testing.T) {
	zeotest.NoLeaks(t)
	st := connMemFromFile(t, connBasicFS)
	want := st.LastTransaction().String() + "\n"
	serve := func(ln net.Listener) {
		srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			<-done
		})
	}
	sock := filepath.Join(t.TempDir(), "zeo.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(ln)
	if out, errOut, code := connectRun("-s", sock, "last-tid"); code != 0 || out != want {
		t.Errorf("unix: %d %q %q", code, out, errOut)
	}
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	serve(ln6)
	if out, errOut, code := connectRun("-s", ln6.Addr().String(), "last-tid"); code != 0 || out != want {
		t.Errorf("ipv6 %s: %d %q %q", ln6.Addr(), code, out, errOut)
	}
}

func TestConnectCopyBlobs(t *testing.T) {
	zeotest.NoLeaks(t)
	ctx := context.Background()
	st := memstore.New("blobs")
	if err := st.SetBlobDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	blobRecord := []byte("\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.")
	contents := [][]byte{bytes.Repeat([]byte("blob one "), 20000), []byte("blob two\n")}
	var tids []zeowire.Tid
	for i, content := range contents {
		tmp := filepath.Join(st.BlobTempDir(), "upload")
		os.WriteFile(tmp, content, 0o600)
		tid := zeowire.TidFromTime(time.Now()).LaterThan(st.LastTransaction())
		stx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: tid, Status: ' ', Description: []byte("blob")})
		if err != nil {
			t.Fatal(err)
		}
		var serial zeowire.Tid
		if i > 0 {
			serial = tids[0]
		}
		if err := stx.(zeowire.BlobTxn).StoreBlob(1, serial, blobRecord, tmp); err != nil {
			t.Fatal(err)
		}
		if err := stx.Vote(); err != nil {
			t.Fatal(err)
		}
		if err := stx.Finish(); err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	s := zeotest.Start(t, true, st)
	dir := t.TempDir()
	dest, blobs := filepath.Join(dir, "Data.fs"), filepath.Join(dir, "blobs")
	out, errOut, code := connectRun("-s", s.Addr, "copy", dest, "--blob-dir", blobs)
	if code != 0 || !strings.Contains(out, "(2 records, ") || !strings.Contains(out, ", 2 blobs in "+blobs+")") || errOut != "" {
		t.Fatalf("copy: %d %q %q", code, out, errOut)
	}
	for i, tid := range tids {
		got, err := os.ReadFile(zeowire.BushyBlobPath(blobs, 1, tid))
		if err != nil || !bytes.Equal(got, contents[i]) {
			t.Errorf("blob %d: %v (%d bytes)", i, err, len(got))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(blobs, ".layout")); string(b) != "bushy" {
		t.Errorf(".layout %q", b)
	}
	// Without --blob-dir: the records, and a warning.
	dest2 := filepath.Join(dir, "NoBlobs.fs")
	_, errOut, code = connectRun("-s", s.Addr, "copy", dest2)
	if code != 0 || errOut != "zodbctl connect: copy: the storage has blobs; they are not copied without --blob-dir\n" {
		t.Errorf("copy without blobs: %d %q", code, errOut)
	}
	// A missing blob fails the copy and leaves nothing behind.
	os.Chmod(zeowire.BushyOidDir(st.BlobDir(), 1), 0o700)
	if err := os.Remove(zeowire.BushyBlobPath(st.BlobDir(), 1, tids[1])); err != nil {
		t.Fatal(err)
	}
	dir3 := t.TempDir()
	_, errOut, code = connectRun("-s", s.Addr, "copy", filepath.Join(dir3, "Data.fs"), "--blob-dir", filepath.Join(dir3, "blobs"))
	if code != exitConnNoObject || !strings.HasPrefix(errOut, "zodbctl connect: "+s.Addr+": sendBlob: ") {
		t.Errorf("missing blob: %d %q", code, errOut)
	}
	if ents, _ := os.ReadDir(dir3); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

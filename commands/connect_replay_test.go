package commands

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/zeotest"
)

// A server that answers from a transcript recorded between the real Python
// ZEO client and server (testdata/zeo): each call of the client under test
// gets the reply the Python server gave to the same call. This checks that
// the client understands the reference server's actual replies in both
// encodings, and that it only makes calls the reference server answered.

type recordedCall struct {
	call  zeowire.Message
	reply []byte // the recorded reply frame payload
	used  bool
}

type connTranscript struct {
	letter byte
	codec  zeowire.Codec
	calls  []*recordedCall
	ruok   []byte // the JSON the server sent to a ruok probe, if recorded
}

func connLoadTranscript(t *testing.T, name string) *connTranscript {
	t.Helper()
	f, err := os.Open("../testdata/zeo/" + name + ".jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := &connTranscript{}
	type rec struct {
		Conn     int    `json:"conn"`
		Dir      string `json:"dir"`
		Kind     string `json:"kind"`
		Hex      string `json:"hex"`
		Encoding string `json:"encoding"`
	}
	pending := map[int][]*recordedCall{}
	ruokAsked := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r rec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Kind != "frame" {
			continue
		}
		p, err := hex.DecodeString(r.Hex)
		if err != nil {
			t.Fatal(err)
		}
		switch r.Encoding {
		case "raw-handshake":
			if r.Dir == "s2c" && tr.letter == 0 {
				tr.letter = p[0]
				tr.codec = zeowire.CodecFor(p[0])
			}
			if r.Dir == "c2s" && string(p) == "ruok" {
				ruokAsked = true
			}
			continue
		case "json":
			if ruokAsked && r.Dir == "s2c" {
				tr.ruok = p
			}
			continue
		}
		m, err := zeowire.CodecFor(map[string]byte{"pickle": 'Z', "msgpack": 'M'}[r.Encoding]).DecodeMessage(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Dir == "c2s" && m.Kind == zeowire.KindCall {
			pending[r.Conn] = append(pending[r.Conn], &recordedCall{call: m})
			continue
		}
		if r.Dir == "s2c" && (m.Kind == zeowire.KindReply || m.Kind == zeowire.KindError) {
			for i, pc := range pending[r.Conn] {
				if zeowire.Equal(pc.call.ID, m.ID) {
					pc.reply = p
					tr.calls = append(tr.calls, pc)
					pending[r.Conn] = append(pending[r.Conn][:i], pending[r.Conn][i+1:]...)
					break
				}
			}
		}
	}
	return tr
}

// matches tells whether a recorded call answers m. register matches on the
// storage name (preferring the same read-only wish, see answer), pack on
// its name (the time differs), loadBefore on the oid (the snapshot tid
// differs), everything else on equal arguments.
func (rc *recordedCall) matches(m zeowire.Message) bool {
	if rc.used || rc.call.Name != m.Name {
		return false
	}
	a, _ := rc.call.Args.(zeowire.Tuple)
	b, _ := m.Args.(zeowire.Tuple)
	switch m.Name {
	case "pack":
		return true
	case "register", "loadBefore":
		return len(a) == 2 && len(b) == 2 && zeowire.Equal(a[0], b[0])
	}
	return zeowire.Equal(rc.call.Args, m.Args)
}

func (tr *connTranscript) answer(m zeowire.Message) *recordedCall {
	var found *recordedCall
	for _, rc := range tr.calls {
		if !rc.matches(m) {
			continue
		}
		if m.Name == "register" {
			a, b := rc.call.Args.(zeowire.Tuple), m.Args.(zeowire.Tuple)
			if zeowire.Truthy(a[1]) != zeowire.Truthy(b[1]) {
				if found == nil {
					found = rc
				}
				continue
			}
		}
		found = rc
		break
	}
	if found != nil && m.Name != "register" { // every connection registers
		found.used = true
	}
	return found
}

// connReplayServer serves tr; unexpected lists the calls it had no answer
// for (the connection is then closed).
type connReplayServer struct {
	addr       string
	mu         sync.Mutex
	unexpected []string
}

func connStartReplay(t *testing.T, tr *connTranscript) *connReplayServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &connReplayServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(nc, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				s.serve(nc, tr)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return s
}

func (s *connReplayServer) serve(nc net.Conn, tr *connTranscript) {
	nc.Write(zeowire.AppendFrame(nil, []byte{tr.letter, '5'}))
	fr := zeowire.NewFrameReader(nc, 0)
	hs, err := fr.ReadFrame()
	if err != nil {
		return
	}
	if string(hs) == "ruok" {
		nc.Write(zeowire.AppendFrame(nil, tr.ruok))
		return
	}
	for {
		p, err := fr.ReadFrame()
		if err != nil {
			return
		}
		m, err := tr.codec.DecodeMessage(p)
		if err != nil || m.IsHeartbeat() || m.Kind == zeowire.KindAsync {
			continue
		}
		s.mu.Lock()
		rc := tr.answer(m)
		if rc == nil {
			s.unexpected = append(s.unexpected, m.Name+zeowire.Repr(m.Args))
		}
		s.mu.Unlock()
		if rc == nil {
			return
		}
		r, err := tr.codec.DecodeMessage(rc.reply)
		if err != nil {
			return
		}
		r.ID = m.ID
		out, err := tr.codec.AppendMessage(nil, &r)
		if err != nil {
			return
		}
		if _, err := nc.Write(zeowire.AppendFrame(nil, out)); err != nil {
			return
		}
	}
}

func (s *connReplayServer) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.unexpected) > 0 {
		t.Errorf("calls the reference server was never asked: %v", s.unexpected)
	}
}

func TestConnectAgainstRecordedPythonServer(t *testing.T) {
	zeotest.NoLeaks(t)

	// History and iteration (pickle).
	tr := connLoadTranscript(t, "h-history-iteration")
	s := connStartReplay(t, tr)
	out, errOut, code := connectRun("-s", s.addr, "history", "0", "-n", "5")
	want := "03f58e0000000001 2024-01-01 00:00:00.000000 size=93 user=b'bob' description=b'create obj' extension={'k': 'v'}\n" +
		"03f58e0000000000 2024-01-01 00:00:00.000000 size=64 user=b'' description=b'initial database creation'\n"
	if code != 0 || out != want {
		t.Errorf("history: %d %q %q\nwant %q", code, out, errOut, want)
	}
	_, errOut, code = connectRun("-s", s.addr, "history", "63", "-n", "5")
	if code != exitConnNoObject || errOut != "zodbctl connect: "+s.addr+": history: no such object: oid 0000000000000063\n" {
		t.Errorf("history missing: %d %q", code, errOut)
	}
	out, errOut, code = connectRun("-s", s.addr, "transactions", "--json")
	if code != 0 {
		t.Fatalf("transactions: %d %s", code, errOut)
	}
	fsOut, _, _ := connFsdumpJSON(t, "../testdata/zeo/data/h-history-iteration/before/Data1.fs")
	connAgreesWithFsdump(t, out, fsOut)
	s.check(t)
	// The text form, from a fresh replay: fsdump's lines less the offsets.
	s = connStartReplay(t, connLoadTranscript(t, "h-history-iteration"))
	out, _, code = connectRun("-s", s.addr, "transactions")
	// (the fsdump output the reference tools wrote next to the file)
	fsText, err := os.ReadFile("../testdata/zeo/data/h-history-iteration/before/Data1.fs.dump.txt")
	if err != nil {
		t.Fatal(err)
	}
	wantText := regexp.MustCompile(`(?m)^(Trans #\d+ tid=\w+) size=\d+ (time=.*) offset=\d+$`).ReplaceAllString(string(fsText), "$1 $2")
	if got := regexp.MustCompile(`(?m) extension=.*$`).ReplaceAllString(out, ""); code != 0 || got != wantText || len(fsText) == 0 {
		t.Errorf("transactions:\n%s\nwant\n%s", got, wantText)
	}
	s.check(t)

	// Server info, status, loads (pickle).
	tr = connLoadTranscript(t, "p-misc-calls")
	s = connStartReplay(t, tr)
	out, _, code = connectRun("-s", s.addr, "info")
	if code != 0 || !strings.Contains(out, "name: Data1.fs\nsize: 597\nlength: 3\nlast-transaction: 03f58e0000000001 2024-01-01 00:00:00.000000\n") ||
		!strings.Contains(out, "read-only: false\nsupports-undo: true\nsupports-record-iternext: true\ninterfaces: ZODB.interfaces.IStorageRestoreable ") {
		t.Errorf("info: %d %s", code, out)
	}
	out, _, code = connectRun("-s", s.addr, "status")
	if code != 0 || !strings.Contains(out, "\nconnections: 1\nloads: 0\n") || !strings.Contains(out, "\ntimeout-thread-is-alive: stub\nlast-transaction: 03f58e0000000001\n") {
		t.Errorf("status: %d %s", code, out)
	}
	s.check(t)

	// Read-only server: writable registration refused, read-only fallback
	// for info, pack allowed.
	tr = connLoadTranscript(t, "i-readonly-server")
	s = connStartReplay(t, tr)
	out, _, code = connectRun("-s", s.addr, "info")
	if code != 0 || !strings.Contains(out, "\nread-only: true\n") {
		t.Errorf("read-only info: %d %s", code, out)
	}
	out, _, code = connectRun("-s", s.addr, "pack")
	if code != 0 || !strings.HasPrefix(out, "packed storage 1 at "+s.addr) {
		t.Errorf("read-only pack: %d %s", code, out)
	}
	s.check(t)

	// Unknown storage.
	tr = connLoadTranscript(t, "l-unknown-storage")
	s = connStartReplay(t, tr)
	_, errOut, code = connectRun("-s", s.addr, "-S", "nope", "last-tid")
	if code != exitConnRefused || errOut != "zodbctl connect: "+s.addr+": register storage \"nope\": unknown storage\n" {
		t.Errorf("unknown storage: %d %q", code, errOut)
	}
	s.check(t)

	// ruok.
	tr = connLoadTranscript(t, "m06-ruok")
	s = connStartReplay(t, tr)
	out, _, code = connectRun("-s", s.addr, "status", "--ruok")
	if code != 0 || !strings.HasPrefix(out, "address: "+s.addr+"\nstorage 1:\n  connections: 0\n  loads: 0\n") || !strings.Contains(out, "  lock_time: None\n") {
		t.Errorf("ruok: %d %s", code, out)
	}
	out, _, code = connectRun("-s", s.addr, "status", "--ruok", "--json")
	if code != 0 || out != string(tr.ruok)+"\n" {
		t.Errorf("ruok --json: %d %s", code, out)
	}

	// msgpack: an exception reply, then a record.
	tr = connLoadTranscript(t, "j-msgpack")
	s = connStartReplay(t, tr)
	_, errOut, code = connectRun("-s", s.addr, "load", "0")
	if code != exitConnNoObject || errOut != "zodbctl connect: "+s.addr+": loadBefore: no such object: oid 0000000000000000\n" {
		t.Errorf("msgpack load: %d %q", code, errOut)
	}
	out, _, code = connectRun("-s", s.addr, "cat", "0")
	if code != 0 || !strings.HasPrefix(out, "oid: 0000000000000000\ntid: 03f58e0000000000 2024-01-01 00:00:00.000000\nclass: persistent.mapping.PersistentMapping\n") {
		t.Errorf("msgpack cat: %d %s", code, out)
	}
	s.check(t)
}

package zeowire_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/fsstore"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// The replay test plays every recorded session of testdata/zeo (real
// Python clients talking to the real Python server) against the Go server:
// client frames are sent verbatim, server frames are read per connection and
// compared with the recording (byte for byte when possible, else as decoded
// values with the README's allowances: get_info name, FileStorage sizes,
// the order of getInvalidations oids). Storages are in-memory, seeded from
// the scenario's before/ files; the committed transactions are compared with
// the after/ files at the end.

const zeoData = "../testdata/zeo"

// notReplayable lists sessions the in-memory storage cannot reproduce
// (none at the moment; keep the mechanism for new recordings).
var notReplayable = map[string]string{}

type record struct {
	Seq      int             `json:"seq"`
	Conn     int             `json:"conn"`
	Dir      string          `json:"dir"`
	Kind     string          `json:"kind"`
	Hex      string          `json:"hex"`
	Decoded  string          `json:"decoded"`
	Summary  string          `json:"summary"`
	Encoding string          `json:"encoding"`
	Value    json.RawMessage `json:"value"`
}

// backend says what serves the replayed sessions.
type backend int

const (
	// memBackend: memstore seeded from before/, compared by content with
	// after/ (sizes and get_info names are allowed to differ).
	memBackend backend = iota
	// fileBackend: zeowire/fsstore on copies of the before/ files; every
	// reply must match (sizes and names included) and the files must end up
	// byte-identical to after/.
	fileBackend
)

func TestReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(zeoData, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s: %v", zeoData, err)
	}
	for _, be := range []backend{memBackend, fileBackend} {
		kind := map[backend]string{memBackend: "memory", fileBackend: "filestorage"}[be]
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".jsonl")
			f, _ := filepath.Abs(f)
			t.Run(kind+"/"+name, func(t *testing.T) {
				if why, ok := notReplayable[name]; ok {
					t.Skip(why)
				}
				if why, ok := notReplayableFile[name]; ok && be == fileBackend {
					t.Skip(why)
				}
				replay(t, name, f, be)
			})
		}
	}
}

// notReplayableFile lists sessions the FileStorage backend does not
// reproduce yet, with the reason.
var notReplayableFile = map[string]string{}

// scenarioConfig is the part of configs/<name>.conf the replay needs.
type scenarioConfig struct {
	msgpack, readOnly, clientResolution bool
	storages                            []string          // names in order
	paths                               map[string]string // name -> path
	blobDirs                            map[string]string // name -> blob-dir
}

var (
	reSection = regexp.MustCompile(`(?m)^<(filestorage|mappingstorage)\s*([^>]*)>`)
	rePath    = regexp.MustCompile(`(?m)^\s*path\s+(\S+)`)
	reBlobDir = regexp.MustCompile(`(?m)^\s*blob-dir\s+(\S+)`)
)

func loadConfig(t *testing.T, name string) scenarioConfig {
	b, err := os.ReadFile(filepath.Join(zeoData, "configs", name+".conf"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	cfg := scenarioConfig{paths: map[string]string{}, blobDirs: map[string]string{}}
	flag := func(key string) bool {
		return regexp.MustCompile(`(?m)^\s*` + key + `\s+true\s*$`).MatchString(text)
	}
	cfg.msgpack, cfg.readOnly, cfg.clientResolution = flag("msgpack"), flag("read-only"), flag("client-conflict-resolution")
	locs := reSection.FindAllStringSubmatchIndex(text, -1)
	for i, loc := range locs {
		n := strings.ToLower(strings.TrimSpace(text[loc[4]:loc[5]]))
		if n == "" {
			n = "1"
		}
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		cfg.storages = append(cfg.storages, n)
		if m := rePath.FindStringSubmatch(text[loc[1]:end]); m != nil {
			cfg.paths[n] = m[1]
		}
		if m := reBlobDir.FindStringSubmatch(text[loc[1]:end]); m != nil {
			cfg.blobDirs[n] = m[1]
		}
	}
	return cfg
}

// seed loads a Data.fs into a fresh memstore, transaction by transaction.
func seed(t *testing.T, path, name string) *memstore.Store {
	st := memstore.New(name)
	f, err := fsformat.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return st
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bg := context.Background()
	for txn, err := range f.Transactions(fsformat.IterOptions{}) {
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		meta := zeowire.TxnMeta{
			Tid: zeowire.Tid(txn.Tid), Status: txn.Status,
			User: bytes.Clone(txn.User), Description: bytes.Clone(txn.Description),
		}
		if len(txn.Extension) > 0 {
			ext, err := zeowire.DecodePickleValue(txn.Extension)
			if err != nil {
				t.Fatalf("%s: extension of %s: %v", path, meta.Tid, err)
			}
			meta.Extension, _ = ext.(zeowire.Dict)
		}
		type rec struct {
			oid  zeowire.Oid
			data []byte
			back zeowire.Tid
		}
		var recs []rec
		for r, err := range txn.Records() {
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			rc := rec{oid: zeowire.Oid(r.Oid), data: bytes.Clone(r.Data)}
			if r.IsBackpointer() {
				data, tid, _, err := f.LoadBack(r.Oid, r.Back)
				if err == nil {
					rc.data, rc.back = bytes.Clone(data), zeowire.Tid(tid)
				} else if !errors.Is(err, fsformat.ErrNoData) {
					t.Fatalf("%s: %v", path, err)
				}
			}
			recs = append(recs, rc)
		}
		stx, err := st.Begin(bg, meta)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := stx.Restore(r.oid, meta.Tid, r.data, r.back); err != nil {
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

type replayServer struct {
	be     backend
	files  map[string]*fsstore.Store
	srv    *zeowire.Server
	addr   string
	served chan error
	logs   *syncBuffer
	stores map[string]*memstore.Store
	dir    string // working directory (blob directories)
}

func startReplayServer(t *testing.T, cfg scenarioConfig, dataDir string, be backend) *replayServer {
	rs := &replayServer{be: be, logs: &syncBuffer{}, served: make(chan error, 1), stores: map[string]*memstore.Store{},
		files: map[string]*fsstore.Store{}, dir: t.TempDir()}
	storages := map[string]zeowire.Storage{}
	if be == fileBackend {
		// Relative paths, as in the recorded configs (get_info's name).
		t.Chdir(rs.dir)
	}
	for _, n := range cfg.storages {
		p := cfg.paths[n]
		if be == fileBackend {
			if b, err := os.ReadFile(filepath.Join(dataDir, p)); err == nil {
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			st, err := fsstore.Open(p, fsstore.Options{BlobDir: cfg.blobDirs[n], PackGC: true, PackKeepOld: true})
			if err != nil {
				t.Fatal(err)
			}
			rs.files[n] = st
			storages[n] = st
			continue
		}
		st := seed(t, filepath.Join(dataDir, p), p)
		if bd := cfg.blobDirs[n]; bd != "" {
			if err := st.SetBlobDir(filepath.Join(rs.dir, bd)); err != nil {
				t.Fatal(err)
			}
		}
		rs.stores[n] = st
		storages[n] = st
	}
	rs.srv = &zeowire.Server{
		Storages:                 storages,
		Order:                    cfg.storages,
		Logger:                   slog.New(slog.NewTextHandler(rs.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ReadOnly:                 cfg.readOnly,
		Msgpack:                  cfg.msgpack,
		ClientConflictResolution: cfg.clientResolution,
		Now:                      frozen,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs.addr = ln.Addr().String()
	go func() { rs.served <- rs.srv.Serve(ln) }()
	return rs
}

func (rs *replayServer) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rs.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	<-rs.served
	for n, st := range rs.files {
		if err := st.Close(); err != nil {
			t.Errorf("closing storage %s: %v", n, err)
		}
	}
}

// replayConn is one client connection of the replay.
type replayConn struct {
	nc       net.Conn
	frames   chan []byte
	readErr  chan error
	encoding byte              // 'Z' or 'M' once the client chose
	calls    map[string]string // msgid (as JSON) -> method
	closed   bool
	strict   bool // sizes and names must match too
}

func dialReplay(t *testing.T, addr string, strict bool) *replayConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := &replayConn{nc: nc, frames: make(chan []byte, 1000), readErr: make(chan error, 1), calls: map[string]string{}, strict: strict}
	go func() {
		fr := zeowire.NewFrameReader(nc, 1<<31-1)
		for {
			p, err := fr.ReadFrame()
			if err != nil {
				close(rc.frames)
				rc.readErr <- err
				return
			}
			rc.frames <- bytes.Clone(p)
		}
	}()
	return rc
}

func replay(t *testing.T, name, path string, be backend) {
	cfg := loadConfig(t, name)
	before, err := filepath.Abs(filepath.Join(zeoData, "data", name, "before"))
	if err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Abs(filepath.Join(zeoData, "data", name, "after"))
	recs := readTranscript(t, path)
	rs := startReplayServer(t, cfg, before, be)
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", rs.logs.String())
		}
	}()
	conns := map[int]*replayConn{}
	var exact, semantic int
	defer func() {
		for _, c := range conns {
			c.nc.Close()
		}
	}()
	for _, r := range recs {
		if r.Dir == "note" {
			continue
		}
		// f3: 105 commits happened outside the relay between conn 1 and
		// conn 2; restart on the after/ files as the README says.
		if name == "f3-reconnect-cache-too-old" && r.Conn == 2 && r.Kind == "open" {
			for _, c := range conns {
				c.nc.Close()
			}
			rs.stop(t)
			rs = startReplayServer(t, cfg, after, be)
		}
		c := conns[r.Conn]
		where := fmt.Sprintf("seq %d conn %d %s %s", r.Seq, r.Conn, r.Dir, r.Kind)
		switch {
		case r.Kind == "open":
			conns[r.Conn] = dialReplay(t, rs.addr, be == fileBackend)
		case r.Dir == "c2s" && (r.Kind == "frame" || r.Kind == "partial"):
			payload, _ := hex.DecodeString(r.Hex)
			var out []byte
			if r.Kind == "frame" {
				out = zeowire.AppendFrame(nil, payload)
				if r.Encoding == "raw-handshake" && len(payload) > 0 && c.encoding == 0 {
					c.encoding = payload[0]
				}
				noteCall(c, r)
			} else {
				out = payload // unframed bytes (only the first 256 are recorded)
			}
			// The server may already have closed a hostile connection.
			c.nc.Write(out)
		case r.Dir == "c2s" && r.Kind == "eof":
			if tc, ok := c.nc.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
		case r.Dir == "s2c" && r.Kind == "frame":
			got, err := next(c)
			if err != nil {
				t.Fatalf("%s: expected %s, got %v", where, r.Decoded, err)
			}
			if msg := compareFrame(c, r, got); msg != "" {
				t.Fatalf("%s: %s\nexpected %s\n     got %s", where, msg, r.Decoded, describeFrame(c, r, got))
			}
			if hex.EncodeToString(got) == r.Hex {
				exact++
			} else {
				semantic++
			}
		case r.Dir == "s2c" && r.Kind == "eof":
			got, err := next(c)
			if err == nil {
				t.Fatalf("%s: expected the server to close, got frame %s", where, describeFrame(c, r, got))
			}
			c.closed = true
		}
	}
	// Nothing unexpected may be left.
	for n, c := range conns {
		select {
		case p, ok := <-c.frames:
			if ok {
				t.Errorf("conn %d: unexpected frame at the end: %x", n, p)
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, c := range conns {
		c.nc.Close()
	}
	rs.stop(t)
	if be == fileBackend {
		compareFiles(t, cfg, rs, after)
	} else {
		compareAfter(t, name, cfg, rs)
	}
	t.Logf("%d server frames byte-identical, %d equal with the allowed differences", exact, semantic)
}

func readTranscript(t testing.TB, path string) []record {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	return recs
}

func next(c *replayConn) ([]byte, error) {
	select {
	case p, ok := <-c.frames:
		if !ok {
			return nil, <-c.readErr
		}
		return p, nil
	case <-time.After(5 * time.Second):
		return nil, errors.New("timeout: no frame within 5 s")
	}
}

// noteCall remembers which method each message id called, for the
// comparison rules of its reply.
func noteCall(c *replayConn, r record) {
	v, err := typedValue(r.Value)
	if err != nil {
		return
	}
	seq := asSeq(v)
	if len(seq) != 4 {
		return
	}
	if name, ok := seq[2].(string); ok {
		c.calls[zeowire.Repr(normalizeSeq(seq[0]))] = name
	}
}

func asSeq(v any) []any {
	switch x := v.(type) {
	case zeowire.Tuple:
		return x
	case zeowire.List:
		return x
	}
	return nil
}

// normalizeSeq turns every list into a tuple (msgpack has only arrays).
func normalizeSeq(v any) any {
	switch x := v.(type) {
	case zeowire.List:
		return normalizeSeq(zeowire.Tuple(x))
	case zeowire.Tuple:
		out := make(zeowire.Tuple, len(x))
		for i := range x {
			out[i] = normalizeSeq(x[i])
		}
		return out
	case zeowire.Dict:
		out := make(zeowire.Dict, len(x))
		for i := range x {
			out[i] = zeowire.KV{Key: normalizeSeq(x[i].Key), Value: normalizeSeq(x[i].Value)}
		}
		return out
	}
	return v
}

func describeFrame(c *replayConn, r record, got []byte) string {
	if v, err := decodeFrame(c, r, got); err == nil {
		return zeowire.Repr(v)
	}
	return fmt.Sprintf("%x", got)
}

func decodeFrame(c *replayConn, r record, p []byte) (any, error) {
	switch {
	case r.Encoding == "raw-handshake" || r.Encoding == "json" || r.Encoding == "":
		return p, nil
	case c.encoding == 'M':
		return zeowire.DecodeMsgpackValue(p)
	default:
		return zeowire.DecodePickleValue(p)
	}
}

// compareFrame returns "" if got matches the recorded frame.
func compareFrame(c *replayConn, r record, got []byte) string {
	if hex.EncodeToString(got) == r.Hex {
		return ""
	}
	if r.Encoding == "raw-handshake" || r.Encoding == "json" {
		return "bytes differ"
	}
	want, err := typedValue(r.Value)
	if err != nil {
		return "bad recorded value: " + err.Error()
	}
	have, err := decodeFrame(c, r, got)
	if err != nil {
		return "cannot decode our frame: " + err.Error()
	}
	if c.encoding == 'M' {
		want = normalizeSeq(want)
	}
	method := ""
	if seq := asSeq(have); len(seq) == 4 {
		method = c.calls[zeowire.Repr(normalizeSeq(seq[0]))]
	}
	if diff := compareValue(want, have, method, "", c.strict); diff != "" {
		return diff
	}
	return ""
}

// compareValue compares with the README's allowances.
func compareValue(want, have any, method, path string, strict bool) string {
	switch w := want.(type) {
	case zeowire.Dict:
		h, ok := have.(zeowire.Dict)
		if !ok || len(h) != len(w) {
			return fmt.Sprintf("%s: dict %s vs %s", path, zeowire.Repr(want), zeowire.Repr(have))
		}
		for i := range w {
			if !zeowire.Equal(w[i].Key, h[i].Key) {
				return fmt.Sprintf("%s: key %d is %s, want %s", path, i, zeowire.Repr(h[i].Key), zeowire.Repr(w[i].Key))
			}
			k, _ := w[i].Key.(string)
			// Sizes depend on FileStorage's exact layout; name on the path.
			if !strict && (k == "size" || (k == "name" && method == "get_info")) {
				continue
			}
			if d := compareValue(w[i].Value, h[i].Value, method, path+"."+k, strict); d != "" {
				return d
			}
		}
		return ""
	case zeowire.Tuple, zeowire.List:
		ws, hs := asSeq(want), asSeq(have)
		if hs == nil || len(ws) != len(hs) || fmt.Sprintf("%T", want) != fmt.Sprintf("%T", have) {
			return fmt.Sprintf("%s: %s vs %s", path, zeowire.Repr(want), zeowire.Repr(have))
		}
		if method == "getInvalidations" && path == "[3][1]" {
			// A set in the reference: any order.
			a, b := reprs(ws), reprs(hs)
			if strings.Join(a, ",") != strings.Join(b, ",") {
				return fmt.Sprintf("%s: oids %v vs %v", path, a, b)
			}
			return ""
		}
		for i := range ws {
			if d := compareValue(ws[i], hs[i], method, fmt.Sprintf("%s[%d]", path, i), strict); d != "" {
				return d
			}
		}
		return ""
	}
	if !zeowire.Equal(want, have) {
		return fmt.Sprintf("%s: %s vs %s", path, zeowire.Repr(want), zeowire.Repr(have))
	}
	return ""
}

func reprs(l []any) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = zeowire.Repr(v)
	}
	sort.Strings(out)
	return out
}

// typedValue converts the README's typed JSON into wire values.
func typedValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return fromTyped(v)
}

func fromTyped(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return nil, fmt.Errorf("number %s", x)
	case []any:
		l := make(zeowire.List, len(x))
		for i := range x {
			var err error
			if l[i], err = fromTyped(x[i]); err != nil {
				return nil, err
			}
		}
		return l, nil
	case map[string]any:
		switch {
		case x["bytes"] != nil:
			return hex.DecodeString(x["bytes"].(string))
		case x["int"] != nil:
			n, ok := new(big.Int).SetString(x["int"].(string), 10)
			if !ok {
				return nil, fmt.Errorf("int %v", x["int"])
			}
			if n.IsInt64() {
				return n.Int64(), nil
			}
			return n, nil
		case x["float"] != nil:
			return x["float"].(json.Number).Float64()
		case x["tuple"] != nil:
			l, err := fromTyped(x["tuple"])
			if err != nil {
				return nil, err
			}
			return zeowire.Tuple(l.(zeowire.List)), nil
		case x["dict"] != nil:
			var d zeowire.Dict
			for _, kv := range x["dict"].([]any) {
				pair := kv.([]any)
				k, err := fromTyped(pair[0])
				if err != nil {
					return nil, err
				}
				val, err := fromTyped(pair[1])
				if err != nil {
					return nil, err
				}
				d = append(d, zeowire.KV{Key: k, Value: val})
			}
			if d == nil {
				d = zeowire.Dict{}
			}
			return d, nil
		}
		return nil, fmt.Errorf("unknown typed value %v", x)
	}
	return nil, fmt.Errorf("unexpected JSON %T", v)
}

// compareFiles checks that the FileStorage backend left files
// byte-identical to after/ (and the same committed blob files).
func compareFiles(t *testing.T, cfg scenarioConfig, rs *replayServer, after string) {
	for _, n := range cfg.storages {
		p := cfg.paths[n]
		want, err := os.ReadFile(filepath.Join(after, p))
		if err != nil {
			continue
		}
		have, err := os.ReadFile(filepath.Join(rs.dir, p))
		if err != nil {
			t.Errorf("storage %s: %v", n, err)
			continue
		}
		if !bytes.Equal(want, have) {
			t.Errorf("storage %s: %s differs from after/%s (%d bytes, want %d)", n, p, p, len(have), len(want))
		}
		if bd := cfg.blobDirs[n]; bd != "" {
			if d := diffBlobTrees(filepath.Join(after, bd), filepath.Join(rs.dir, bd)); d != "" {
				t.Errorf("blob directory %s: %s", bd, d)
			}
		}
	}
}

// compareAfter checks that the storages hold the transactions of the
// after/ files: same tids, status, user, description, and records.
func compareAfter(t *testing.T, name string, cfg scenarioConfig, rs *replayServer) {
	after := filepath.Join(zeoData, "data", name, "after")
	for _, n := range cfg.storages {
		p := filepath.Join(after, cfg.paths[n])
		if _, err := os.Stat(p); err != nil {
			continue
		}
		want := seed(t, p, "after")
		if d := diffStores(want, rs.stores[n]); d != "" {
			t.Errorf("storage %s differs from %s: %s", n, p, d)
		}
		if bd := cfg.blobDirs[n]; bd != "" {
			if d := diffBlobTrees(filepath.Join(after, bd), filepath.Join(rs.dir, bd)); d != "" {
				t.Errorf("blob directory %s: %s", bd, d)
			}
		}
	}
}

func diffStores(want, have *memstore.Store) string {
	bg := context.Background()
	wi, _ := want.Iterate(bg, 0, 0)
	hi, _ := have.Iterate(bg, 0, 0)
	for i := 0; ; i++ {
		wm, wr, wok, _ := wi.Next()
		hm, hr, hok, _ := hi.Next()
		if !wok || !hok {
			if wok != hok {
				return fmt.Sprintf("transaction %d: present in only one (want %v, have %v)", i, wok, hok)
			}
			return ""
		}
		if wm.Tid != hm.Tid || wm.Status != hm.Status || !bytes.Equal(wm.User, hm.User) || !bytes.Equal(wm.Description, hm.Description) || !zeowire.Equal(normalizeExt(wm.Extension), normalizeExt(hm.Extension)) {
			return fmt.Sprintf("transaction %d: want %s %q %q %q %s, have %s %q %q %q %s", i,
				wm.Tid, wm.Status, wm.User, wm.Description, zeowire.Repr(wm.Extension),
				hm.Tid, hm.Status, hm.User, hm.Description, zeowire.Repr(hm.Extension))
		}
		// FileStorage writes a blob's record twice (storea and the blob
		// store); the memory storage keeps the last store of an oid.
		wr = lastStoreWins(wr)
		if len(wr) != len(hr) {
			return fmt.Sprintf("transaction %s: %d records, want %d", wm.Tid, len(hr), len(wr))
		}
		for j := range wr {
			if wr[j].Oid != hr[j].Oid || !bytes.Equal(wr[j].Data, hr[j].Data) {
				return fmt.Sprintf("transaction %s record %d: oid %s, want oid %s (or data differs)", wm.Tid, j, hr[j].Oid, wr[j].Oid)
			}
		}
	}
}

func lastStoreWins(recs []zeowire.DataRecord) []zeowire.DataRecord {
	var out []zeowire.DataRecord
	at := map[zeowire.Oid]int{}
	for _, r := range recs {
		if i, ok := at[r.Oid]; ok {
			out[i] = r
			continue
		}
		at[r.Oid] = len(out)
		out = append(out, r)
	}
	return out
}

// diffBlobTrees compares the committed blob files (not tmp/).
func diffBlobTrees(want, have string) string {
	list := func(root string) map[string]string {
		m := map[string]string{}
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				if d != nil && d.IsDir() && d.Name() == "tmp" {
					return filepath.SkipDir
				}
				return nil
			}
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			m[rel] = string(b)
			return nil
		})
		return m
	}
	w, h := list(want), list(have)
	for k, v := range w {
		if hv, ok := h[k]; !ok {
			return "missing " + k
		} else if hv != v {
			return "content of " + k + " differs"
		}
	}
	for k := range h {
		if _, ok := w[k]; !ok {
			return "unexpected " + k
		}
	}
	return ""
}

func normalizeExt(d zeowire.Dict) zeowire.Dict {
	if d == nil {
		return zeowire.Dict{}
	}
	return d
}

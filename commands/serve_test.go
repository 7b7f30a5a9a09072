package commands

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/renameio/v2"

	"github.com/zodbctl/zodbctl/fsformat"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/fsstore"
)

func serveRun(args ...string) (string, string, int) {
	var o, e bytes.Buffer
	code := Run(append([]string{"zodbctl", "serve"}, args...), &o, &e)
	return o.String(), e.String(), code
}

func TestServeCheck(t *testing.T) {
	home := t.TempDir()
	for _, d := range []string{"etc", "var", "blobs"} {
		os.Mkdir(filepath.Join(home, d), 0o755)
	}
	conf := filepath.Join(home, "etc", "zeo.conf")
	os.WriteFile(conf, []byte(`<zeo>
    address 8800
    read-only false
    invalidation-queue-size 100
</zeo>
<filestorage 1>
    path $INSTANCE/var/Data1.fs
</filestorage>
<filestorage 2>
    path $INSTANCE/var/Data2.fs
    read-only true
    blob-dir $INSTANCE/blobs
</filestorage>
<mappingstorage m/>
`), 0o644)
	out, errOut, code := serveRun("--check", "-C", conf)
	want := "config " + conf + "\naddress *:8800\nread-only false\n" +
		"storage 1 filestorage path=" + home + "/var/Data1.fs read-only=false blob-dir=-\n" +
		"storage 2 filestorage path=" + home + "/var/Data2.fs read-only=true blob-dir=" + home + "/blobs\n" +
		"storage m mappingstorage path=- read-only=false blob-dir=-\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("exit %d\n%s\nstderr %q\nwant\n%s", code, out, errOut, want)
	}

	// -X: a define and a key override.
	other := t.TempDir()
	os.Mkdir(filepath.Join(other, "var"), 0o755)
	out, _, code = serveRun("--check", "-C", conf, "-X", "INSTANCE="+other, "-X", "zeo/address=[::1]:8200", "-X", "zeo/read-only=on")
	want = "config " + conf + "\naddress [::1]:8200\nread-only true\n" +
		"storage 1 filestorage path=" + other + "/var/Data1.fs read-only=true blob-dir=-\n"
	if code != 0 || out[:len(want)] != want {
		t.Errorf("-X: exit %d\n%s\nwant\n%s", code, out, want)
	}

	// runzeo's -a, -f, -t and --pid-file, with and without -C.
	out, _, code = serveRun("--check", "-a", "127.0.0.1:8100", "-f", home+"/var/a.fs", "-f", "b.fs")
	want = "config -\naddress 127.0.0.1:8100\nread-only false\n" +
		"storage 1 filestorage path=" + home + "/var/a.fs read-only=false blob-dir=-\n" +
		"storage 2 filestorage path=b.fs read-only=false blob-dir=-\n"
	if code != 0 || out != want {
		t.Errorf("-a -f: exit %d\n%s\nwant\n%s", code, out, want)
	}
	out, _, code = serveRun("--check", "-C", conf, "-a", "/tmp/zeo.sock", "-f", "c.fs", "-t", "2.5", "--pid-file", "zeo.pid")
	want = "config " + conf + "\naddress unix:/tmp/zeo.sock\nread-only false\nstorage 1 filestorage path=c.fs read-only=false blob-dir=-\n"
	if code != 0 || out != want {
		t.Errorf("-C -a -f: exit %d\n%s\nwant\n%s", code, out, want)
	}

	// Errors: one line, exit 2, nothing on stdout.
	bad := filepath.Join(home, "etc", "bad.conf")
	os.WriteFile(bad, []byte("<zeo>\naddress 8800\nread-only 1\n</zeo>\n<mappingstorage/>\n"), 0o644)
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--check", "-C", bad}, "zodbctl: serve: not a valid boolean value: '1' (key 'read-only', line 3, in file://" + bad + ")\n"},
		{[]string{"--check", "-C", filepath.Join(home, "none.conf")}, "zodbctl: serve: error opening file " + home + "/none.conf: [Errno 2] No such file or directory: '" + home + "/none.conf'\n"},
		{[]string{"--check"}, "zodbctl: serve: no server address specified; use -a or -C\n"},
		{[]string{"--check", "-a", "8100"}, "zodbctl: serve: no storages specified; use -f or -C\n"},
		{[]string{"--check", "-C", conf, "-a", "a b"}, "zodbctl: serve: -a: not a valid host name: 'a b'\n"},
		{[]string{"-C", conf}, "zodbctl: serve: the ZEO server is not built yet\n"},
		{[]string{"--check", "-C", conf, "-X", "novalue"}, "zodbctl: serve: -X novalue: want NAME=VALUE\n"},
	}
	if runServer != nil {
		cases = cases[:5]
	}
	for _, c := range cases {
		out, errOut, code := serveRun(c.args...)
		if code != 2 || out != "" || errOut != c.stderr {
			t.Errorf("%v: exit %d stdout %q stderr %q, want %q", c.args, code, out, errOut, c.stderr)
		}
	}
}

// startServe runs `zodbctl serve args...` in-process and returns its
// address, a stop function (SIGTERM's effect) and the exit status channel.
func startServe(t *testing.T, args ...string) (addr string, stop func(), done chan serveResult) {
	t.Helper()
	started := make(chan struct{})
	serveStarted = func(a net.Addr, s func()) {
		addr, stop = a.String(), s
		close(started)
	}
	t.Cleanup(func() { serveStarted = nil })
	done = make(chan serveResult, 1)
	go func() {
		var o, e syncBuf
		code := Run(append([]string{"zodbctl", "serve"}, args...), &o, &e)
		done <- serveResult{code, o.String(), e.String()}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("serve exited %d: %s%s", r.code, r.stdout, r.stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	return addr, stop, done
}

type serveResult struct {
	code           int
	stdout, stderr string
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func zeoDial(t testing.TB, addr, storage string) *zeowire.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := zeowire.Dial(ctx, addr, zeowire.ClientOptions{Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, storage, false); err != nil {
		t.Fatal(err)
	}
	return c
}

// zeoCommit stores data for oid (based on serial) in one transaction.
func zeoCommit(ctx context.Context, c *zeowire.ClientConn, id int64, oid zeowire.Oid, serial zeowire.Tid, data []byte) (zeowire.Tid, error) {
	if err := c.Async("tpc_begin", id, []byte("/ tester"), []byte("serve test"), zeowire.Dict{{Key: "n", Value: id}}, nil, " "); err != nil {
		return 0, err
	}
	if err := c.Async("storea", oid.Bytes(), serial.Bytes(), data, id); err != nil {
		return 0, err
	}
	r, err := c.Call(ctx, "vote", id)
	if err != nil {
		return 0, err
	}
	if l, ok := r.(zeowire.List); ok && len(l) > 0 {
		c.Call(ctx, "tpc_abort", id)
		return 0, fmt.Errorf("conflict: %s", zeowire.Repr(r))
	}
	r, err = c.Call(ctx, "tpc_finish", id)
	if err != nil {
		return 0, err
	}
	return zeowire.AsTid(r)
}

// TestServeFileStorages runs serve on two FileStorages: commits, loads,
// pid file, metrics, clean stop (exit 0, pid file removed, index saved,
// files verify).
func TestServeFileStorages(t *testing.T) {
	dir := t.TempDir()
	d1, d2, pid := filepath.Join(dir, "Data1.fs"), filepath.Join(dir, "Data2.fs"), filepath.Join(dir, "zeo.pid")
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ml.Addr().String()
	ml.Close()
	addr, stop, done := startServe(t, "-a", "127.0.0.1:0", "-f", d1, "-f", d2, "--pid-file", pid, "--metrics", maddr)
	if b, err := os.ReadFile(pid); err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("pid file %q %v", b, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tids [2]zeowire.Tid
	for i, name := range []string{"1", "2"} {
		c := zeoDial(t, addr, name)
		tid, err := zeoCommit(ctx, c, 1, 0, 0, []byte("root of "+name))
		if err != nil {
			t.Fatal(err)
		}
		tids[i] = tid
		rev, ok, err := c.LoadBefore(ctx, 0, zeowire.Tid(1<<62))
		if err != nil || !ok || string(rev.Data) != "root of "+name || rev.Start != tid {
			t.Fatalf("load: %+v %v %v", rev, ok, err)
		}
		c.Close()
	}
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`zodbctl_zeo_commits_total{storage="1"} 1`, `zodbctl_zeo_commits_total{storage="2"} 1`, `zodbctl_zeo_loads_total{storage="1"} 1`,
		`zodbctl_zeo_storage_objects{storage="2"} 1`, "zodbctl_zeo_received_bytes_total "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	stop()
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"created PID file", "opening storage '1' using FileStorage", "terminated by SIGTERM", "closing storage '2'", "removed PID file"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log lacks %q:\n%s", want, r.stderr)
		}
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pid file left: %v", err)
	}
	for _, p := range []string{d1, d2} {
		if err := fsformat.Verify(p, fsformat.VerifyOptions{}); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(p + ".index"); err != nil {
			t.Error(err)
		}
	}
}

// TestServeDefaultInstance: no options at all serves var/Data1.fs and
// var/Data2.fs and says how to connect (on port 0 here instead of the fixed
// default, as every test server).
func TestServeDefaultInstance(t *testing.T) {
	defaultServeAddress = "127.0.0.1:0" // tests listen on port 0 only
	t.Cleanup(func() { defaultServeAddress = DefaultServeAddress })
	dir := t.TempDir()
	t.Chdir(dir)
	addr, stop, done := startServe(t, "--log-json")
	if !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Errorf("address %s", addr)
	}
	c := zeoDial(t, addr, "2")
	c.Close()
	stop()
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"storage 2", "server " + addr + "\n", "zodbctl connect -s " + addr + " info", `"msg":"listening on ` + addr + `"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, p := range []string{"var/Data1.fs", "var/Data2.fs"} {
		if err := fsformat.Verify(filepath.Join(dir, p), fsformat.VerifyOptions{}); err != nil {
			t.Error(err)
		}
	}
}

// TestServeLockedStorage: a Data.fs already locked makes serve fail with
// exit 1 and the lock message.
func TestServeLockedStorage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "Data.fs")
	l, err := fsformat.LockStorage(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	_, errOut, code := serveRun("-a", "127.0.0.1:0", "-f", p)
	if code != 1 || !strings.Contains(errOut, "lock") {
		t.Errorf("exit %d stderr %q", code, errOut)
	}
}

// The crash test: a child process (this test binary) serves a Data.fs;
// four clients commit concurrently, each a stream of transactions on its
// own object, and the child is killed with SIGKILL at a random moment.
// After a restart every acknowledged transaction is in the file with its
// data, the file verifies, and nothing that was not sent is there.
func TestServeCrash(t *testing.T) {
	if os.Getenv("ZODBCTL_SERVE_CHILD") != "" {
		serveChild()
		return
	}
	if testing.Short() {
		t.Skip("child processes")
	}
	rounds := 3
	if s := os.Getenv("ZODBCTL_CRASH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	const clients = 4
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	type ack struct {
		client int
		n      int64
	}
	var mu sync.Mutex
	acked := map[zeowire.Tid]ack{}
	var last [clients]zeowire.Tid // the last acknowledged serial of each client's object
	var next [clients]int64       // each client's next transaction number
	for round := 0; round < rounds; round++ {
		addr, kill := startChild(t, dir, path)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		conns := make([]*zeowire.ClientConn, clients)
		for i := range conns {
			conns[i] = zeoDial(t, addr, "1")
			// The transaction in flight at the kill may have committed
			// without its reply reaching the client: allowed, never older.
			oid := zeowire.Oid(i + 1)
			rev, ok, err := conns[i].LoadBefore(ctx, oid, zeowire.Tid(1<<62))
			switch {
			case err == nil && ok:
				if rev.Start < last[i] {
					t.Fatalf("round %d: oid %d at %s, before its last acknowledged %s", round, oid, rev.Start, last[i])
				}
				last[i] = rev.Start
			case last[i] != 0:
				t.Fatalf("round %d: oid %d missing after restart: %v", round, oid, err)
			}
		}
		// The kill is armed once a commit of this round was acknowledged, so
		// every round has something to lose, however slow the machine.
		var arm sync.Once
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					next[i]++
					n, serial := next[i], last[i]
					mu.Unlock()
					tid, err := zeoCommit(ctx, c, n, zeowire.Oid(i+1), serial, []byte(fmt.Sprintf("client %d txn %d", i, n)))
					if err != nil {
						return // the server died under us
					}
					mu.Lock()
					acked[tid], last[i] = ack{i, n}, tid
					mu.Unlock()
					arm.Do(func() {
						time.AfterFunc(time.Duration(50+rand.IntN(250))*time.Millisecond, kill)
					})
				}
			}()
		}
		wg.Wait()
		cancel()
		for _, c := range conns {
			c.Close()
		}
		kill()
	}
	// Restart once more (truncates an interrupted tail), then check.
	_, kill := startChild(t, dir, path)
	kill()
	st, err := fsstore.Open(path, fsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := fsformat.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := map[zeowire.Tid]bool{}
	var prevN [clients]int64
	for tx, err := range f.Transactions(fsformat.IterOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		for r, err := range tx.Records() {
			if err != nil {
				t.Fatal(err)
			}
			var client int
			var k int64
			if _, err := fmt.Sscanf(string(r.Data), "client %d txn %d", &client, &k); err != nil ||
				client < 0 || client >= clients || r.Oid != fsformat.Oid(client+1) || k <= prevN[client] {
				t.Fatalf("record %q of oid %d at %d: not a sent transaction in order", r.Data, r.Oid, r.Pos)
			}
			if want, ok := acked[zeowire.Tid(tx.Tid)]; ok && want != (ack{client, k}) {
				t.Fatalf("tid %s holds client %d txn %d, acknowledged as client %d txn %d", zeowire.Tid(tx.Tid), client, k, want.client, want.n)
			}
			prevN[client] = k
		}
		found[zeowire.Tid(tx.Tid)] = true
	}
	for tid, a := range acked {
		if !found[tid] {
			t.Errorf("acknowledged transaction %d of client %d (%s) lost", a.n, a.client, tid)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no transaction acknowledged")
	}
	t.Logf("%d rounds, %d clients: %d transactions acknowledged, %d in the file", rounds, clients, len(acked), len(found))
}

// startChild runs serve on path in a child process and returns its address
// and a function that kills it with SIGKILL (idempotent).
func startChild(t *testing.T, dir, path string, args ...string) (string, func()) {
	t.Helper()
	addr, kill, _ := startChildCmd(t, dir, path, args...)
	return addr, kill
}

// startChildCmd is startChild that also returns the command (for signals
// and the exit status); args, if any, replace the default serve arguments.
func startChildCmd(t *testing.T, dir, path string, args ...string) (string, func(), *exec.Cmd) {
	t.Helper()
	addrFile := filepath.Join(dir, "addr")
	os.Remove(addrFile)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeCrash$")
	cmd.Env = append(os.Environ(), "ZODBCTL_SERVE_CHILD="+path, "ZODBCTL_SERVE_ADDR_FILE="+addrFile,
		"ZODBCTL_SERVE_ARGS="+strings.Join(args, "\n"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(kill)
	for i := 0; i < 500; i++ {
		if b, err := os.ReadFile(addrFile); err == nil && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b)), kill, cmd
		}
		time.Sleep(20 * time.Millisecond)
	}
	kill()
	t.Fatal("child server did not start")
	return "", nil, nil
}

// serveChild is the child side of TestServeCrash.
func serveChild() {
	serveStarted = func(a net.Addr, _ func()) {
		renameio.WriteFile(os.Getenv("ZODBCTL_SERVE_ADDR_FILE"), []byte(a.String()+"\n"), 0o644)
	}
	args := []string{"zodbctl", "serve", "-a", "127.0.0.1:0", "-f", os.Getenv("ZODBCTL_SERVE_CHILD")}
	if a := os.Getenv("ZODBCTL_SERVE_ARGS"); a != "" {
		args = append([]string{"zodbctl", "serve"}, strings.Split(a, "\n")...)
	}
	code := Run(args, io.Discard, os.Stderr)
	os.Exit(code)
}

// TestServeSignals: a real process with an <eventlog> file: SIGUSR2 and
// SIGHUP reopen the log after rotation, SIGTERM stops it with exit 0,
// the pid file removed and Data.fs.index saved.
func TestServeSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	dir := t.TempDir()
	data, logf, pid := filepath.Join(dir, "Data.fs"), filepath.Join(dir, "zeo.log"), filepath.Join(dir, "zeo.pid")
	conf := filepath.Join(dir, "zeo.conf")
	os.WriteFile(conf, []byte("<zeo>\n  address 127.0.0.1:0\n  pid-filename "+pid+"\n</zeo>\n<filestorage 1>\n  path "+data+
		"\n</filestorage>\n<eventlog>\n  <logfile>\n    path "+logf+"\n  </logfile>\n</eventlog>\n"), 0o644)
	addr, _, cmd := startChildCmd(t, dir, data, "-C", conf)
	c := zeoDial(t, addr, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := zeoCommit(ctx, c, 1, 0, 0, []byte("root")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if b, err := os.ReadFile(pid); err != nil || string(b) != strconv.Itoa(cmd.Process.Pid)+"\n" {
		t.Errorf("pid file %q %v", b, err)
	}
	for i, sig := range []syscall.Signal{syscall.SIGUSR2, syscall.SIGHUP} {
		rotated := fmt.Sprintf("%s.%d", logf, i)
		if err := os.Rename(logf, rotated); err != nil {
			t.Fatal(err)
		}
		cmd.Process.Signal(sig)
		serveWaitFor(t, func() bool {
			b, _ := os.ReadFile(logf)
			return strings.Contains(string(b), "Log files reopened successfully")
		})
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	b, _ := os.ReadFile(logf)
	for _, want := range []string{"terminated by SIGTERM", "closing storage '1'", "removed PID file"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %q:\n%s", want, b)
		}
	}
	if b, _ := os.ReadFile(logf + ".0"); !strings.Contains(string(b), "committed") {
		t.Errorf("first log lacks the commit:\n%s", b)
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pid file left: %v", err)
	}
	if _, err := os.Stat(data + ".index"); err != nil {
		t.Error(err)
	}
	if err := fsformat.Verify(data, fsformat.VerifyOptions{}); err != nil {
		t.Error(err)
	}
}

func serveWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 250; i++ {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("timed out")
}

// TestServeTLS: <ssl> in <zeo> makes serve speak TLS and require a client
// certificate signed by the authenticate CA.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCert(t, dir, "ca", nil, nil)
	makeCert(t, dir, "server", ca, caKey)
	makeCert(t, dir, "client", ca, caKey)
	otherCA, otherKey := makeCert(t, dir, "other", nil, nil)
	makeCert(t, dir, "stranger", otherCA, otherKey)
	conf := filepath.Join(dir, "zeo.conf")
	os.WriteFile(conf, []byte("<zeo>\n  address 127.0.0.1:0\n  <ssl>\n    certificate "+dir+"/server.pem\n    key "+dir+"/server.key\n"+
		"    authenticate "+dir+"/ca.pem\n  </ssl>\n</zeo>\n<filestorage 1>\n  path "+dir+"/Data.fs\n</filestorage>\n"), 0o644)
	addr, stop, done := startServe(t, "-C", conf)
	dialTLS := func(who string) error {
		cfg, err := zeowire.ClientTLSConfig(dir+"/"+who+".pem", dir+"/"+who+".key", dir+"/ca.pem", "127.0.0.1", true)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := zeowire.Dial(ctx, addr, zeowire.ClientOptions{Heartbeat: -1, TLS: cfg})
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Register(ctx, "1", false); err != nil {
			return err
		}
		_, err = zeoCommit(ctx, c, 1, 0, 0, []byte("over TLS"))
		return err
	}
	if err := dialTLS("client"); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	if err := dialTLS("stranger"); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
	stop()
	if r := <-done; r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

// makeCert writes NAME.pem and NAME.key: a CA when parent is nil, else a
// certificate for 127.0.0.1 signed by parent.
func makeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestServeUnixMappingReadOnly: a Unix-socket address, a <mappingstorage>
// and a read-only <filestorage> in one config.
func TestServeUnixMappingReadOnly(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "zeo.sock")
	ro := filepath.Join(dir, "ro.fs")
	// The read-only file must exist: make it with a root.
	st, err := fsstore.Open(ro, fsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	conf := filepath.Join(dir, "zeo.conf")
	os.WriteFile(conf, []byte("<zeo>\n  address "+sock+"\n</zeo>\n<mappingstorage m/>\n<filestorage r>\n  path "+ro+"\n  read-only true\n</filestorage>\n"), 0o644)
	addr, stop, done := startServe(t, "-C", conf)
	if addr != sock {
		t.Errorf("address %q", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := zeoDial(t, sock, "m")
	if _, err := zeoCommit(ctx, c, 1, 0, 0, []byte("in memory")); err != nil {
		t.Fatal(err)
	}
	info, err := c.GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := info.Get("name"); v != "Mapping Storage" {
		t.Errorf("mapping storage name %v", v)
	}
	c.Close()
	c2, err := zeowire.Dial(ctx, sock, zeowire.ClientOptions{Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Register(ctx, "r", false); err == nil {
		t.Error("writable register on a read-only storage accepted")
	}
	c2.Close()
	stop()
	if r := <-done; r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	} else if !strings.Contains(r.stderr, "r:RO:"+ro) || !strings.Contains(r.stderr, "m:RW:Mapping Storage") {
		t.Errorf("log:\n%s", r.stderr)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left: %v", err)
	}
}

// rootRecord is a small ZODB record for the root (a fixturemodel.Node
// whose state holds text), so that a GC pack can read it.
func rootRecord(text string) []byte {
	b := []byte("\x80\x03cfixturemodel\nNode\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02B")
	b = binary.LittleEndian.AppendUint32(b, uint32(len(text)))
	b = append(b, text...)
	return append(b, "q\x03s."...)
}

// recordNumber finds "txn N" in a record.
func recordNumber(data []byte) (int64, bool) {
	i := bytes.Index(data, []byte("txn "))
	if i < 0 {
		return 0, false
	}
	var n int64
	_, err := fmt.Sscanf(string(data[i:]), "txn %d", &n)
	return n, err == nil
}

// TestServeCrashDuringPack: like TestServeCrash with packs (GC, pack time
// now) running in a loop from a second client, so the kill also lands in
// the middle of packs and of the switch to a packed file. After each
// restart the root is at the last acknowledged transaction or later, and
// the file verifies.
func TestServeCrashDuringPack(t *testing.T) {
	if os.Getenv("ZODBCTL_SERVE_CHILD") != "" || testing.Short() {
		t.Skip("child processes")
	}
	rounds := 3
	if s := os.Getenv("ZODBCTL_CRASH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Data.fs")
	var last zeowire.Tid
	var lastN, n int64
	var packs atomic.Int64
	for round := 0; round < rounds; round++ {
		addr, kill := startChild(t, dir, path)
		c := zeoDial(t, addr, "1")
		p := zeoDial(t, addr, "1")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if rev, ok, err := c.LoadBefore(ctx, 0, zeowire.Tid(1<<62)); err == nil && ok {
			k, _ := recordNumber(rev.Data)
			if rev.Start < last || k < lastN {
				t.Fatalf("round %d: root at %s (txn %d), last acknowledged %s (txn %d)", round, rev.Start, k, last, lastN)
			}
			last, lastN = rev.Start, k
		} else if last != 0 {
			t.Fatalf("round %d: root missing after restart: %v", round, err)
		}
		go func() {
			for ctx.Err() == nil {
				if _, err := p.Call(ctx, "pack", float64(time.Now().UnixNano())/1e9); err != nil {
					return
				}
				packs.Add(1)
			}
		}()
		// The kill is armed once a commit of this round was acknowledged, and
		// fires after a random delay but not before a pack of this round has
		// completed (or 5 s passed), so kills land in packs and in the switch
		// to a packed file whatever the machine's load.
		packsBefore := packs.Load()
		armed := false
		for {
			n++
			tid, err := zeoCommit(ctx, c, n, 0, last, rootRecord(fmt.Sprintf("txn %d", n)))
			if err != nil {
				break
			}
			last, lastN = tid, n
			if !armed {
				armed = true
				delay := time.Duration(100+rand.IntN(300)) * time.Millisecond
				go func() {
					time.Sleep(delay)
					for end := time.Now().Add(5 * time.Second); packs.Load() == packsBefore && time.Now().Before(end); {
						time.Sleep(5 * time.Millisecond)
					}
					kill()
				}()
			}
		}
		cancel()
		c.Close()
		p.Close()
		kill()
	}
	_, kill := startChild(t, dir, path)
	kill()
	st, err := fsstore.Open(path, fsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rev, ok, err := st.LoadBefore(context.Background(), 0, zeowire.Tid(1<<62))
	st.Close()
	if err != nil || !ok {
		t.Fatalf("root: %v %v", ok, err)
	}
	if k, _ := recordNumber(rev.Data); rev.Start < last || k < lastN {
		t.Fatalf("root at %s (txn %d), last acknowledged %s (txn %d)", rev.Start, k, last, lastN)
	}
	if err := fsformat.Verify(path, fsformat.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if packs.Load() == 0 {
		t.Error("no pack completed")
	}
	t.Logf("%d rounds, last acknowledged txn %d, %d packs completed", rounds, lastN, packs.Load())
}

// TestServeBlobStorage: <blobstorage> over a <filestorage> serves blobs
// (get_info announces IBlobStorage; the blob directory is made bushy).
func TestServeBlobStorage(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "zeo.conf")
	os.WriteFile(conf, []byte("<zeo>\n  address 127.0.0.1:0\n</zeo>\n<blobstorage 1>\n  blob-dir "+dir+"/blobs\n  <filestorage>\n    path "+dir+"/Data.fs\n  </filestorage>\n</blobstorage>\n"), 0o644)
	addr, stop, done := startServe(t, "-C", conf)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := zeoDial(t, addr, "1")
	info, err := c.GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(zeowire.Repr(info), "IBlobStorage") {
		t.Errorf("get_info: %s", zeowire.Repr(info))
	}
	c.Close()
	stop()
	if r := <-done; r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "blobs", ".layout")); string(b) != "bushy" {
		t.Errorf(".layout %q", b)
	}
}

// TestServeLimitFlags: the per-connection limits set by flags reach the
// server: a connection that does not register is closed after
// --register-timeout, one sending a frame over --max-frame-size is closed,
// and other clients go on.
func TestServeLimitFlags(t *testing.T) {
	dir := t.TempDir()
	if _, _, exit := serveRun("-a", "127.0.0.1:0", "-f", filepath.Join(dir, "x.fs"), "--max-frame-size", "10"); exit != ExitUsage {
		t.Errorf("--max-frame-size 10: exit %d, want %d", exit, ExitUsage)
	}
	addr, stop, done := startServe(t, "-a", "127.0.0.1:0", "-f", filepath.Join(dir, "Data.fs"),
		"--max-frame-size", "4096", "--register-timeout", "300ms")
	defer func() { stop(); <-done }()

	rawDial := func() net.Conn {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		hdr := make([]byte, 4)
		if _, err := io.ReadFull(nc, hdr); err != nil { // the server's "Z5"
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, make([]byte, binary.BigEndian.Uint32(hdr))); err != nil {
			t.Fatal(err)
		}
		return nc
	}
	closedWithin := func(nc net.Conn, limit time.Duration) time.Duration {
		start := time.Now()
		if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connection not closed by the server: %v", err)
		}
		took := time.Since(start)
		if took > limit {
			t.Errorf("closed after %v, want within %v", took, limit)
		}
		return took
	}

	idle := rawDial()
	defer idle.Close()
	took := closedWithin(idle, 5*time.Second)
	if took < 200*time.Millisecond {
		t.Errorf("unregistered connection closed after %v, before --register-timeout 300ms", took)
	}

	big := rawDial()
	defer big.Close()
	frame := func(payload []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
	}
	big.Write(frame([]byte("Z5")))
	big.Write(frame(make([]byte, 5000)))
	closedWithin(big, 5*time.Second)

	// A well-behaved client is served meanwhile and after.
	c := zeoDial(t, addr, "1")
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := zeoCommit(ctx, c, 1, 0, 0, []byte("ok")); err != nil {
		t.Fatal(err)
	}
}

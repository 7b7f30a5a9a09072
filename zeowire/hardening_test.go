package zeowire_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// waitLog waits until the server log contains want.
func waitLog(t *testing.T, ts *testServer, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(ts.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the server log after %v", want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// registerRaw completes the handshake and registers storage 1 on a raw
// msgpack connection.
func registerRaw(t *testing.T, addr string, readOnly bool) *rawConn {
	t.Helper()
	r := dialRaw(t, addr)
	r.recv()
	r.send([]byte("M5"))
	r.send(encodeM(t, zeowire.Message{ID: int64(1), Kind: zeowire.KindCall, Name: "register", Args: zeowire.Tuple{"1", readOnly}}))
	if m := decodeM(t, r.recv()); m.Kind != zeowire.KindReply {
		t.Fatalf("register: %v", m.Args)
	}
	return r
}

func decodeM(t *testing.T, p []byte) zeowire.Message {
	t.Helper()
	m, err := zeowire.MsgpackCodec{}.DecodeMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A connection that does not register within RegisterTimeout is closed,
// whatever stage it stopped at; registered connections are never timed out.
func TestRegisterTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ts := startServer(t, func(s *zeowire.Server) { s.RegisterTimeout = timeout })
	registered := dial(t, ts.addr, "1")

	silent := dialRaw(t, ts.addr) // reads the announcement, says nothing
	silent.recv()
	handshaken := dialRaw(t, ts.addr) // answers M5, never registers
	handshaken.recv()
	handshaken.send([]byte("M5"))
	partial := dialRaw(t, ts.addr) // half a frame header
	partial.recv()
	if _, err := partial.nc.Write([]byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for name, r := range map[string]*rawConn{"silent": silent, "handshaken": handshaken, "partial": partial} {
		r.nc.SetDeadline(time.Now().Add(5 * time.Second))
		r.expectClosed()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s connection closed after %v, timeout %v", name, d, timeout)
		}
	}
	waitLog(t, ts, "not registered in time", time.Second)
	// Well past the timeout, the registered client is still served.
	time.Sleep(2 * timeout)
	if _, err := registered.Call(ctx(t), "lastTransaction"); err != nil {
		t.Fatalf("registered client after the register timeout: %v", err)
	}
	// A failed register (read-only storage, writable request) does not
	// lift the deadline.
	ts2 := startServer(t, func(s *zeowire.Server) {
		s.RegisterTimeout = timeout
		s.ReadOnly = true
	})
	r := dialRaw(t, ts2.addr)
	r.recv()
	r.send([]byte("M5"))
	r.send(encodeM(t, zeowire.Message{ID: int64(1), Kind: zeowire.KindCall, Name: "register", Args: zeowire.Tuple{"1", false}}))
	if m := decodeM(t, r.recv()); m.Kind != zeowire.KindError {
		t.Fatalf("writable register on a read-only server: %v", m.Args)
	}
	r.expectClosed()
}

// Many idle, half-open and stuck connections do not slow down a client
// doing ordinary work, and Shutdown closes them all.
func TestManySlowAndHalfOpenConnections(t *testing.T) {
	ts := startServer(t, func(s *zeowire.Server) { s.OutboundQueue = 8 })
	w := dial(t, ts.addr, "1")
	big := bytes.Repeat([]byte("x"), 1<<20)
	tid, err := commit(t, w, 1, [3][]byte{oidb(1), z64, big})
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	t.Cleanup(func() {
		for _, nc := range conns {
			nc.Close()
		}
	})
	// 150 connections that never say anything, 50 that stop in the
	// middle of a frame.
	for i := range 200 {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			nc.Write([]byte{0, 0, 0, 9, 'M'})
		}
		conns = append(conns, nc)
	}
	// 10 registered clients that ask for 16 MiB each and read nothing.
	for range 10 {
		r := registerRaw(t, ts.addr, true)
		for i := range 16 {
			r.send(encodeM(t, zeowire.Message{ID: int64(2 + i), Kind: zeowire.KindCall, Name: "loadBefore", Args: zeowire.Tuple{oidb(1), zeowire.MaxTid.Bytes()}}))
		}
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	c := dial(t, ts.addr, "1")
	for n := range 20 {
		if tid, err = commit(t, c, int64(10+n), [3][]byte{oidb(2), serialOf(n, tid), []byte("y")}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.LoadBefore(ctx(t), zeowire.Oid(2), zeowire.MaxTid); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("connect, 20 commits and loads took %v beside 210 stuck connections", d)
	}
}

// A client that stops reading while it holds the commit lock is
// disconnected after WriteTimeout: its transaction is aborted and the
// others' commits proceed.
func TestStuckClientReleasesCommitLock(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	ts := startServer(t, func(s *zeowire.Server) { s.WriteTimeout = writeTimeout })
	w := dial(t, ts.addr, "1")
	big := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := commit(t, w, 1, [3][]byte{oidb(1), z64, big}); err != nil {
		t.Fatal(err)
	}
	stuck := registerRaw(t, ts.addr, false)
	send := func(id int64, kind zeowire.Kind, name string, args ...any) {
		stuck.send(encodeM(t, zeowire.Message{ID: id, Kind: kind, Name: name, Args: zeowire.Tuple(args)}))
	}
	send(0, zeowire.KindAsync, "tpc_begin", int64(7), []byte("stuck"), []byte(""), zeowire.Dict{}, nil, " ")
	send(0, zeowire.KindAsync, "storea", oidb(3), z64, []byte("never"), int64(7))
	send(2, zeowire.KindCall, "vote", int64(7))
	if m := decodeM(t, stuck.recv()); m.Kind != zeowire.KindReply {
		t.Fatalf("vote: %v", m.Args)
	}
	// It holds the commit lock now; it asks for 32 MiB and reads nothing.
	for i := range 32 {
		send(int64(3+i), zeowire.KindCall, "loadBefore", oidb(1), zeowire.MaxTid.Bytes())
	}
	start := time.Now()
	tid, err := commit(t, w, 2, [3][]byte{oidb(2), z64, []byte("after")})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > writeTimeout+3*time.Second {
		t.Errorf("commit behind a stuck lock holder took %v (write timeout %v)", d, writeTimeout)
	}
	waitLog(t, ts, "peer read nothing", time.Second)
	// The stuck transaction was aborted, not committed.
	var pk *zeowire.POSKeyError
	if _, ok, err := w.LoadBefore(ctx(t), zeowire.Oid(3), zeowire.MaxTid); ok || !errors.As(err, &pk) {
		t.Errorf("oid 3 of the aborted transaction: ok=%v err=%v, want a POSKeyError", ok, err)
	}
	if rev, ok, err := w.LoadBefore(ctx(t), zeowire.Oid(2), zeowire.MaxTid); err != nil || !ok || rev.Start != tid {
		t.Errorf("oid 2: %+v %v %v", rev, ok, err)
	}
}

// slowUndo is a storage whose UndoLog blocks until released, counting the
// calls in progress.
type slowUndo struct {
	*memstore.Store
	release           chan struct{}
	inFlight, maxSeen atomic.Int64
}

func (s *slowUndo) UndoLog(ctx context.Context, first, last int, filter func(*zeowire.TxnMeta) bool) ([]zeowire.TxnMeta, error) {
	n := s.inFlight.Add(1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	defer s.inFlight.Add(-1)
	<-s.release
	return s.Store.UndoLog(ctx, first, last, filter)
}

// Calls answered from their own goroutine are capped per connection: at
// the cap the server stops reading the connection until one is answered;
// nothing is dropped and the connection stays open.
func TestPendingCallCap(t *testing.T) {
	const capCalls, sent = 3, 10
	store := &slowUndo{Store: memstore.New("Data.fs"), release: make(chan struct{})}
	ts := startServer(t, func(s *zeowire.Server) {
		s.Storages = map[string]zeowire.Storage{"1": store}
		s.MaxPendingCalls = capCalls
	})
	other := dial(t, ts.addr, "1") // another connection is not held up
	r := registerRaw(t, ts.addr, true)
	for i := range sent {
		r.send(encodeM(t, zeowire.Message{ID: int64(10 + i), Kind: zeowire.KindCall, Name: "undoLog", Args: zeowire.Tuple{int64(0), int64(20)}}))
	}
	r.send(encodeM(t, zeowire.Message{ID: int64(99), Kind: zeowire.KindCall, Name: "lastTransaction", Args: zeowire.Tuple{}}))
	deadline := time.Now().Add(2 * time.Second)
	for store.inFlight.Load() < capCalls && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := other.Call(ctx(t), "lastTransaction"); err != nil {
		t.Fatal(err)
	}
	// Reading is paused: the lastTransaction behind the undoLogs is not
	// answered.
	r.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if p, err := r.fr.ReadFrame(); err == nil {
		t.Fatalf("reply while the pending calls are at the cap: %v", decodeM(t, p))
	}
	if n := store.inFlight.Load(); n != capCalls {
		t.Fatalf("%d undoLog calls in progress, cap %d", n, capCalls)
	}
	close(store.release)
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := map[int64]bool{}
	for len(got) < sent+1 {
		m := decodeM(t, r.recv())
		id, _ := zeowire.AsInt(m.ID)
		if m.Kind != zeowire.KindReply || got[id] {
			t.Fatalf("reply %d: kind %v %v", id, m.Kind, m.Args)
		}
		got[id] = true
	}
	if !got[99] {
		t.Error("lastTransaction not answered")
	}
	if m := store.maxSeen.Load(); m != capCalls {
		t.Errorf("at most %d undoLog calls ran at once, cap %d", m, capCalls)
	}
}

// testPKI is a CA and certificates signed by it, written as PEM files.
type testPKI struct {
	dir  string
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newTestCA(t *testing.T, dir, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	return &testPKI{dir: dir, key: key, cert: cert}
}

// leaf writes name.pem and name.key, signed by the CA.
func (ca *testPKI) leaf(t *testing.T, name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

// TLS with client-certificate authentication: a certificate from the
// server's CA is accepted; one from another CA, or none, is refused; a
// client that stalls in the TLS handshake is closed at RegisterTimeout.
func TestTLSClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	other := newTestCA(t, t.TempDir(), "other-ca")
	serverCert, serverKey := ca.leaf(t, "server", 2, x509.ExtKeyUsageServerAuth)
	goodCert, goodKey := ca.leaf(t, "client", 3, x509.ExtKeyUsageClientAuth)
	badCert, badKey := other.leaf(t, "intruder", 4, x509.ExtKeyUsageClientAuth)
	scfg, err := zeowire.ServerTLSConfig(serverCert, serverKey, filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(s *zeowire.Server) {
		s.TLSConfig = scfg
		s.RegisterTimeout = 300 * time.Millisecond
	})
	caFile := filepath.Join(dir, "ca.pem")
	cx := ctx(t)
	tryRegister := func(certFile, keyFile string) error {
		cfg, err := zeowire.ClientTLSConfig(certFile, keyFile, caFile, "", true)
		if err != nil {
			t.Fatal(err)
		}
		c, err := zeowire.Dial(cx, ts.addr, zeowire.ClientOptions{TLS: cfg})
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a refused client certificate at the first read.
		_, err = c.Register(cx, "1", true)
		return err
	}
	if err := tryRegister(goodCert, goodKey); err != nil {
		t.Fatalf("client certificate of the server's CA: %v", err)
	}
	if err := tryRegister(badCert, badKey); err == nil {
		t.Error("client certificate of another CA accepted")
	}
	if err := tryRegister("", ""); err == nil {
		t.Error("client without a certificate accepted")
	}
	waitLog(t, ts, "TLS handshake failed", time.Second)
	// A TCP client that never starts the TLS handshake is closed.
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if _, err := nc.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("stalled TLS client: %v, want closed", err)
	}
	waitLog(t, ts, "not registered in time (TLS handshake)", time.Second)
	// The good client still works after all that.
	if err := tryRegister(goodCert, goodKey); err != nil {
		t.Fatalf("client certificate of the server's CA, again: %v", err)
	}
}

// Before register, frames are capped at PreRegisterMaxFrameSize; after it,
// at MaxFrameSize.
func TestPreRegisterFrameCap(t *testing.T) {
	ts := startServer(t, nil)
	big := bytes.Repeat([]byte{0xff}, zeowire.PreRegisterMaxFrameSize+1)
	r := dialRaw(t, ts.addr)
	r.recv()
	r.send([]byte("M5"))
	if _, err := r.nc.Write(zeowire.AppendFrame(nil, big)); err != nil {
		t.Fatal(err)
	}
	r.expectClosed()
	waitLog(t, ts, "frame too large", time.Second)

	r = registerRaw(t, ts.addr, true)
	// A call with a 64 KiB argument: answered (with an argument error),
	// the connection stays open.
	r.send(encodeM(t, zeowire.Message{ID: int64(2), Kind: zeowire.KindCall, Name: "loadBefore", Args: zeowire.Tuple{big, zeowire.MaxTid.Bytes()}}))
	if m := decodeM(t, r.recv()); m.Kind != zeowire.KindError {
		t.Fatalf("loadBefore with a bad oid: %v", m.Args)
	}
	r.send(encodeM(t, zeowire.Message{ID: int64(3), Kind: zeowire.KindCall, Name: "lastTransaction", Args: zeowire.Tuple{}}))
	if m := decodeM(t, r.recv()); m.Kind != zeowire.KindReply {
		t.Fatalf("lastTransaction: %v", m.Args)
	}
}

// Calls sent right behind register, in the same write, are not lost when
// the connection's read buffer grows at register.
func TestPipelinedAfterRegister(t *testing.T) {
	ts := startServer(t, nil)
	for _, n := range []int{3, 200} {
		r := dialRaw(t, ts.addr)
		r.recv()
		r.send([]byte("M5"))
		var batch []byte
		batch = zeowire.AppendFrame(batch, encodeM(t, zeowire.Message{ID: int64(1), Kind: zeowire.KindCall, Name: "register", Args: zeowire.Tuple{"1", true}}))
		for i := range n {
			batch = zeowire.AppendFrame(batch, encodeM(t, zeowire.Message{ID: int64(2 + i), Kind: zeowire.KindCall, Name: "lastTransaction", Args: zeowire.Tuple{}}))
		}
		if _, err := r.nc.Write(batch); err != nil {
			t.Fatal(err)
		}
		for i := range n + 1 {
			m := decodeM(t, r.recv())
			if id, _ := zeowire.AsInt(m.ID); id != int64(1+i) || m.Kind != zeowire.KindReply {
				t.Fatalf("%d calls: reply %d: id %v kind %v %v", n, i, m.ID, m.Kind, m.Args)
			}
		}
	}
}

// An unregistered connection costs the server a few KiB (goroutine, small
// read buffer), not the 64 KiB read buffer of a registered one: many
// half-open connections do not eat the memory.
func TestHalfOpenConnectionMemory(t *testing.T) {
	ts := startServer(t, nil)
	const n = 400
	measure := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc + ms.StackInuse
	}
	before := measure()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	fr := make([]byte, 6)
	for range n {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		// The announcement: the server is now reading this connection.
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(nc, fr); err != nil {
			t.Fatal(err)
		}
	}
	after := measure()
	per := int64(after-before) / n
	t.Logf("%d half-open connections: %d bytes each (heap and stacks, both ends)", n, per)
	if per > 24<<10 {
		t.Errorf("a half-open connection costs %d bytes", per)
	}
}

// A client that asks for a large blob and reads nothing is disconnected
// after WriteTimeout; meanwhile the others commit, and their invalidations
// held back for the stuck stream do not block them.
func TestStuckBlobReader(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	dir := t.TempDir()
	ts := startServer(t, func(s *zeowire.Server) {
		st := memstore.New("Data1.fs")
		if err := st.SetBlobDir(dir); err != nil {
			t.Fatal(err)
		}
		s.Storages = map[string]zeowire.Storage{"1": st}
		s.WriteTimeout = writeTimeout
	})
	a := dial(t, ts.addr, "1")
	cx := ctx(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB
	record := []byte("\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N.")
	a.Async("tpc_begin", 1, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	a.Async("storea", oidb(1), z64, record, 1)
	a.Async("storeBlobStart")
	for i := 0; i < len(big); i += 1 << 20 {
		a.Async("storeBlobChunk", big[i:i+1<<20])
	}
	a.Async("storeBlobEnd", oidb(1), z64, record, 1)
	if _, err := a.Call(cx, "vote", 1); err != nil {
		t.Fatal(err)
	}
	r, err := a.Call(cx, "tpc_finish", 1)
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := zeowire.AsTid(r)

	stuck := registerRaw(t, ts.addr, true)
	stuck.send(encodeM(t, zeowire.Message{ID: int64(2), Kind: zeowire.KindCall, Name: "sendBlob", Args: zeowire.Tuple{oidb(1), tid.Bytes()}}))
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	last := tid
	for n := range 10 {
		if last, err = commit(t, a, int64(10+n), [3][]byte{oidb(2), serialOf(n, last), []byte("y")}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("10 commits beside a stuck blob reader took %v", d)
	}
	waitLog(t, ts, "peer read nothing", 5*time.Second)
	// The stuck connection is closed: reading what the kernel holds ends
	// in EOF, well short of the whole blob.
	stuck.nc.SetDeadline(time.Now().Add(10 * time.Second))
	got := 0
	for {
		p, err := stuck.fr.ReadFrame()
		if err != nil {
			break
		}
		got += len(p)
	}
	if got >= len(big) {
		t.Errorf("the stuck client still got the whole blob (%d bytes)", got)
	}
}

// TestDialNotZEO: a client dialing something that is no ZEO server (here
// an HTTP reply) fails at once with an error that says so, instead of
// waiting for a 1.2 GB "frame".
func TestDialNotZEO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		io.Copy(io.Discard, nc)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := zeowire.Dial(ctx, ln.Addr().String(), zeowire.ClientOptions{Heartbeat: -1})
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded")
	}
	if !strings.Contains(err.Error(), `not a ZEO server? its first bytes "HTTP"`) {
		t.Errorf("error %q does not say it is not a ZEO server", err)
	}
}

// TestExceptionReplyOSError: a full disk reaches the client as the
// OSError FileStorage raises, errno, message and file.
func TestExceptionReplyOSError(t *testing.T) {
	err := fmt.Errorf("Data.fs: vote: %w", &fs.PathError{Op: "write", Path: "/var/Data.fs", Err: syscall.ENOSPC})
	class, args := zeowire.ExceptionReply(err)
	want := zeowire.Tuple{int64(28), "No space left on device", "/var/Data.fs"}
	if class != "builtins.OSError" || !zeowire.Equal(args, want) {
		t.Errorf("got %s%s, want builtins.OSError%s", class, zeowire.Repr(args), zeowire.Repr(want))
	}
	class, args = zeowire.ExceptionReply(syscall.EIO)
	if class != "builtins.OSError" || !zeowire.Equal(args, zeowire.Tuple{int64(5), "Input/output error"}) {
		t.Errorf("EIO: got %s%s", class, zeowire.Repr(args))
	}
}

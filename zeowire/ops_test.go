package zeowire_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/fsformat/pickle"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// A client holding the commit lock past transaction-timeout is
// disconnected, its transaction aborted and the lock given to the next voter.
func TestTransactionTimeout(t *testing.T) {
	ts := startServer(t, func(s *zeowire.Server) { s.TransactionTimeout = 200 * time.Millisecond })
	a := dial(t, ts.addr, "1")
	b := dial(t, ts.addr, "1")
	cx := ctx(t)
	a.Async("tpc_begin", 1, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	a.Async("storea", oidb(1), z64, []byte("a"), 1)
	if _, err := a.Call(cx, "vote", 1); err != nil {
		t.Fatal(err)
	}
	st, _ := b.Call(cx, "server_status")
	if v, _ := st.(zeowire.Dict).Get("timeout-thread-is-alive"); v != true {
		t.Errorf("timeout-thread-is-alive = %s", zeowire.Repr(v))
	}
	if v, _ := st.(zeowire.Dict).Get("lock_time"); v != 1704067200.0 {
		t.Errorf("lock_time = %s", zeowire.Repr(v))
	}
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lock holder not disconnected")
	}
	if _, err := commit(t, b, 2, [3][]byte{oidb(2), z64, []byte("b")}); err != nil {
		t.Fatalf("commit after the timeout: %v", err)
	}
	if !strings.Contains(ts.logs.String(), "Transaction timeout after 0 seconds") {
		// 200 ms prints as 0 seconds, as the reference's %d would.
		t.Errorf("no timeout log line")
	}
}

// Shutdown aborts voted transactions, closes every connection and makes
// Serve return; clients see the connection close.
func TestShutdown(t *testing.T) {
	st := memstore.New("m")
	srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}, Now: frozen}
	dir := t.TempDir()
	sock := filepath.Join(dir, "zeo.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, sock, 5*time.Second) }()
	var c *zeowire.ClientConn
	var err error
	for range 100 {
		if c, err = zeowire.Dial(context.Background(), sock, zeowire.ClientOptions{}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	// A connection that never finishes its handshake must not block it.
	raw, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cx := context.Background()
	if _, err := c.Register(cx, "1", false); err != nil {
		t.Fatal(err)
	}
	c.Async("tpc_begin", 1, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
	c.Async("storea", oidb(1), z64, []byte("x"), 1)
	if _, err := c.Call(cx, "vote", 1); err != nil {
		t.Fatal(err)
	}
	if in, out := srv.Traffic(); in == 0 || out == 0 {
		t.Errorf("traffic in %d out %d", in, out)
	}
	stats := srv.Stats()
	if len(stats) != 1 || !stats[0].LockHeld || stats[0].ActiveTxns != 1 || stats[0].Connections != 1 {
		t.Errorf("stats %+v", stats)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ListenAndServe: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown hangs")
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected")
	}
	if st.LastTransaction() != 0 {
		t.Errorf("voted transaction was committed by the shutdown")
	}
	if s := srv.Stats()[0]; s.LockHeld || s.ActiveTxns != 0 || s.Aborts != 1 {
		t.Errorf("after shutdown: %+v", s)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestInvalidationAge(t *testing.T) {
	now := frozen()
	ts := startServer(t, func(s *zeowire.Server) {
		s.InvalidationQueueSize = 1
		s.InvalidationAge = time.Hour
		s.Now = func() time.Time { return now }
	})
	c := dial(t, ts.addr, "1")
	cx := ctx(t)
	t1, _ := commit(t, c, 1, [3][]byte{oidb(1), z64, []byte("1")})
	t2, _ := commit(t, c, 2, [3][]byte{oidb(2), z64, []byte("2")})
	t3, _ := commit(t, c, 3, [3][]byte{oidb(3), z64, []byte("3")})
	// The queue holds only t3; t1 is young enough for a scan.
	r, err := c.Call(cx, "getInvalidations", t1.Bytes())
	if want := (zeowire.Tuple{t3.Bytes(), zeowire.Tuple{oidb(2), oidb(3)}}); err != nil || !zeowire.Equal(r, want) {
		t.Errorf("getInvalidations(t1) = %s %v, want %s", zeowire.Repr(r), err, zeowire.Repr(want))
	}
	r, err = c.Call(cx, "getInvalidations", t2.Bytes())
	if want := (zeowire.Tuple{t3.Bytes(), zeowire.Tuple{oidb(3)}}); err != nil || !zeowire.Equal(r, want) {
		t.Errorf("getInvalidations(t2) = %s %v", zeowire.Repr(r), err)
	}
	now = now.Add(2 * time.Hour)
	if r, err := c.Call(cx, "getInvalidations", t1.Bytes()); err != nil || r != nil {
		t.Errorf("too old: %s %v, want None", zeowire.Repr(r), err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
		writePEM(t, filepath.Join(dir, name+".key"), "EC PRIVATE KEY", kder)
	}
	leaf("server", 2, x509.ExtKeyUsageServerAuth)
	leaf("client", 3, x509.ExtKeyUsageClientAuth)
	scfg, err := zeowire.ServerTLSConfig(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, func(s *zeowire.Server) { s.TLSConfig = scfg })
	ccfg, err := zeowire.ClientTLSConfig(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"), dir, "", true)
	if err != nil {
		t.Fatal(err)
	}
	cx := ctx(t)
	c, err := zeowire.Dial(cx, ts.addr, zeowire.ClientOptions{TLS: ccfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(cx, "1", true); err != nil {
		t.Fatal(err)
	}
	// Without a client certificate the server refuses the handshake.
	nocert, _ := zeowire.ClientTLSConfig("", "", filepath.Join(dir, "ca.pem"), "", true)
	if c2, err := zeowire.Dial(cx, ts.addr, zeowire.ClientOptions{TLS: nocert}); err == nil {
		// TLS 1.3 reports the refusal at the first read.
		_, err = c2.Register(cx, "1", true)
		c2.Close()
		if err == nil {
			t.Error("client without certificate accepted")
		}
	}
	// A plain client gets nowhere, and the server carries on.
	short, cancel := context.WithTimeout(cx, 300*time.Millisecond)
	defer cancel()
	if c3, err := zeowire.Dial(short, ts.addr, zeowire.ClientOptions{}); err == nil {
		c3.Close()
		t.Error("plain client completed a handshake with a TLS server")
	}
	if _, err := c.Call(cx, "ping"); err != nil {
		t.Fatal(err)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// No goroutine survives closed clients and a shut-down server.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv := &zeowire.Server{Storages: map[string]zeowire.Storage{"1": memstore.New("m")}, Now: frozen}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		cx := ctx(t)
		var conns []*zeowire.ClientConn
		for range 5 {
			c, err := zeowire.Dial(cx, ln.Addr().String(), zeowire.ClientOptions{Heartbeat: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Register(cx, "1", false); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		// One client vanishes mid-transaction, one waits for the lock.
		conns[0].Async("tpc_begin", 1, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
		conns[0].Call(cx, "vote", 1)
		conns[1].Async("tpc_begin", 2, []byte{}, []byte{}, zeowire.Dict{}, nil, " ")
		go conns[1].Call(cx, "vote", 2)
		time.Sleep(50 * time.Millisecond)
		for _, c := range conns[:3] {
			c.Close()
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		<-done
		for _, c := range conns[3:] {
			<-c.Done()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// A client that stops reading must not hold up committers: once its
// outbound queue is full it is disconnected (it would reconnect and catch up
// with getInvalidations).
func TestSlowClientDisconnected(t *testing.T) {
	ts := startServer(t, func(s *zeowire.Server) { s.OutboundQueue = 4 })
	w := dial(t, ts.addr, "1")
	big := bytes.Repeat([]byte("x"), 1<<20)
	tid, err := commit(t, w, 1, [3][]byte{oidb(1), z64, big})
	if err != nil {
		t.Fatal(err)
	}
	slow := dialRaw(t, ts.addr)
	slow.recv()
	slow.send([]byte("M5"))
	slow.send(encodeM(t, zeowire.Message{ID: int64(1), Kind: zeowire.KindCall, Name: "register", Args: zeowire.Tuple{"1", true}}))
	slow.recv()
	// The slow client asks for 32 MiB and reads nothing: its socket buffers
	// and its queue fill up.
	for i := range 32 {
		slow.send(encodeM(t, zeowire.Message{ID: int64(2 + i), Kind: zeowire.KindCall, Name: "loadBefore", Args: zeowire.Tuple{oidb(1), zeowire.MaxTid.Bytes()}}))
	}
	time.Sleep(200 * time.Millisecond)
	// Commits go on; the first invalidation that does not fit closes it.
	start := time.Now()
	for n := range 5 {
		if tid, err = commit(t, w, int64(n+2), [3][]byte{oidb(2), serialOf(n, tid), []byte("y")}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("commits took %v with a stuck client", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ts.logs.String(), "outbound queue full") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(ts.logs.String(), "outbound queue full") {
		t.Fatal("the slow client was never disconnected")
	}
	// Its socket delivers what was sent, then EOF.
	slow.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := slow.fr.ReadFrame(); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("slow client: %v", err)
			}
			break
		}
	}
}

// serialOf is z64 for the first store of oid 2, then the last tid.
func serialOf(n int, last zeowire.Tid) []byte {
	if n == 0 {
		return z64
	}
	return last.Bytes()
}

func TestClientHelpers(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.addr, "1")
	cx := ctx(t)
	if _, _, err := c.LoadBefore(cx, 0, zeowire.MaxTid); !isPOSKey(err) {
		t.Errorf("LoadBefore of a missing oid: %v", err)
	}
	tid, err := commit(t, c, 1, [3][]byte{z64, z64, []byte("root")})
	if err != nil {
		t.Fatal(err)
	}
	if last, err := c.LastTransaction(cx); err != nil || last != tid {
		t.Errorf("LastTransaction = %s %v", last, err)
	}
	rev, ok, err := c.LoadBefore(cx, 0, zeowire.MaxTid)
	if err != nil || !ok || string(rev.Data) != "root" || rev.Start != tid || rev.End != 0 {
		t.Errorf("LoadBefore = %+v %v %v", rev, ok, err)
	}
	if _, ok, err := c.LoadBefore(cx, 0, tid); ok || err != nil {
		t.Errorf("LoadBefore before creation: %v %v", ok, err)
	}
	info, err := c.GetInfo(cx)
	if v, _ := info.Get("length"); err != nil || !zeowire.Equal(v, int64(1)) {
		t.Errorf("GetInfo = %s %v", zeowire.Repr(info), err)
	}
	st, err := c.ServerStatus(cx)
	if v, _ := st.Get("commits"); err != nil || !zeowire.Equal(v, int64(1)) {
		t.Errorf("ServerStatus = %s %v", zeowire.Repr(st), err)
	}
	js, err := zeowire.Ruok(cx, ts.addr)
	if err != nil || !strings.HasPrefix(string(js), `{"1": {"connections": 1, "loads": 3,`) {
		t.Errorf("Ruok = %s %v", js, err)
	}
}

// undoInfo with Zope's ZopeUndo.Prefix specification (pickle mode).
func TestUndoInfoPrefix(t *testing.T) {
	ts := startServer(t, func(s *zeowire.Server) { s.Msgpack = false })
	c := dial(t, ts.addr, "1")
	cx := ctx(t)
	for i, desc := range []string{"/site/a edit", "/other edit", "/site/b edit"} {
		c.Async("tpc_begin", int64(i+1), []byte("/ alice"), []byte(desc), zeowire.Dict{}, nil, " ")
		c.Async("storea", oidb(uint64(i+1)), z64, []byte("x"), int64(i+1))
		if _, err := c.Call(cx, "vote", int64(i+1)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Call(cx, "tpc_finish", int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	spec := zeowire.Dict{{Key: "description", Value: &pickle.Object{Callable: pickle.Global{Module: "ZopeUndo.Prefix", Name: "Prefix"}, Args: zeowire.Tuple{"/site"}}}}
	r, err := c.Call(cx, "undoInfo", 0, 20, spec)
	if err != nil {
		t.Fatal(err)
	}
	l := asSeq(r)
	if len(l) != 2 {
		t.Fatalf("undoInfo = %s", zeowire.Repr(r))
	}
	for i, want := range []string{"/site/b edit", "/site/a edit"} {
		if d, _ := l[i].(zeowire.Dict).Get("description"); string(d.([]byte)) != want {
			t.Errorf("entry %d: %s", i, zeowire.Repr(d))
		}
	}
	// An arbitrary global in the specification is refused at decoding.
	bad := zeowire.Dict{{Key: "description", Value: &pickle.Object{Callable: pickle.Global{Module: "os", Name: "system"}, Args: zeowire.Tuple{"true"}}}}
	if _, err := c.Call(cx, "undoInfo", 0, 20, bad); err == nil {
		t.Error("undoInfo with os.system was answered")
	}
}

// A call in flight when the server goes away fails with ErrClosed.
func TestCallFailsWhenServerCloses(t *testing.T) {
	// A fake server that answers the handshake and register, then
	// swallows calls and finally hangs up.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hangUp := make(chan struct{})
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.Write(zeowire.AppendFrame(nil, []byte("M5")))
		fr := zeowire.NewFrameReader(nc, 0)
		fr.ReadFrame() // handshake
		fr.ReadFrame() // register
		reply, _ := zeowire.MsgpackCodec{}.AppendMessage(nil, &zeowire.Message{ID: int64(1), Kind: zeowire.KindReply, Name: ".reply", Args: z64})
		nc.Write(zeowire.AppendFrame(nil, reply))
		fr.ReadFrame() // the call that will never be answered
		<-hangUp
	}()
	cx := ctx(t)
	c, err := zeowire.Dial(cx, ln.Addr().String(), zeowire.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(cx, "1", false); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Call(cx, "lastTransaction"); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	close(hangUp)
	select {
	case err := <-errc:
		if !errors.Is(err, zeowire.ErrClosed) {
			t.Errorf("pending call: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending call not failed")
	}
	if _, err := c.Call(cx, "ping"); !errors.Is(err, zeowire.ErrClosed) {
		t.Errorf("call after close: %v", err)
	}
}

type readOnlyStore struct{ *memstore.Store }

func (readOnlyStore) ReadOnly() bool { return true }

// A storage that reports itself read-only refuses writable registration.
func TestReadOnlyStorage(t *testing.T) {
	ts := startServer(t, func(s *zeowire.Server) {
		s.Storages = map[string]zeowire.Storage{"1": readOnlyStore{memstore.New("ro")}, "2": memstore.New("rw")}
		s.ReadOnlyStorages = map[string]bool{"2": true}
	})
	for _, name := range []string{"1", "2"} {
		c := dial(t, ts.addr, "")
		if _, err := c.Register(ctx(t), name, false); !errors.Is(err, zeowire.ErrReadOnly) {
			t.Errorf("storage %s: writable register: %v", name, err)
		}
		if _, err := c.Register(ctx(t), name, true); err != nil {
			t.Errorf("storage %s: read-only register: %v", name, err)
		}
	}
}

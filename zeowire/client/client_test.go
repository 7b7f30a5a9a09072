package client

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
	"github.com/zodbctl/zodbctl/zeowire/zeotest"
)

// server is an in-process zeowire.Server on 127.0.0.1:0.
// deadAddr is the address of a server that is down: it hangs up on every
// connection before saying anything. It listens (on 127.0.0.1, as every
// test server) until the test ends, so that no other test server can be
// handed its port and answer for it.
func deadAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			nc.Close()
		}
	}()
	return ln.Addr().String()
}

func TestCommitReadIterate(t *testing.T) {
	zeotest.BothEncodings(t, func(t *testing.T, msgpack bool) {
		zeotest.NoLeaks(t)
		s := zeotest.Start(t, msgpack, memstore.New("test"))
		ctx := context.Background()
		var invs []Invalidation
		invCh := make(chan Invalidation, 10)
		c, err := Connect(ctx, Options{Addrs: []string{s.Addr}, OnInvalidate: func(i Invalidation) { invCh <- i }})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if want := byte('Z'); msgpack {
			if c.Encoding() != 'M' {
				t.Errorf("encoding %c", c.Encoding())
			}
		} else if c.Encoding() != want {
			t.Errorf("encoding %c", c.Encoding())
		}
		tid1, err := c.Commit(ctx, []byte("/ alice"), []byte("first"), zeowire.Dict{{Key: "k", Value: "v"}},
			[]Store{{Oid: 0, Data: []byte("root-1")}, {Oid: 1, Data: []byte("one-1")}})
		if err != nil {
			t.Fatal(err)
		}
		tid2, err := c.Commit(ctx, nil, []byte("second"), nil, []Store{{Oid: 1, Serial: tid1, Data: []byte("one-2")}})
		if err != nil || tid2 <= tid1 {
			t.Fatal(tid2, err)
		}
		// A stale serial is a conflict, reported as such.
		_, err = c.Commit(ctx, nil, nil, nil, []Store{{Oid: 1, Serial: tid1, Data: []byte("x")}})
		var ce *zeowire.ConflictError
		if !errors.As(err, &ce) || ce.Oid != 1 || !strings.HasPrefix(err.Error(), s.Addr+": vote: ") {
			t.Errorf("conflict: %v", err)
		}
		last, err := c.LastTransaction(ctx)
		if err != nil || last != tid2 {
			t.Errorf("last %s %v", last, err)
		}
		rev, ok, err := c.LoadBefore(ctx, 1, zeowire.MaxTid)
		if err != nil || !ok || string(rev.Data) != "one-2" || rev.Start != tid2 {
			t.Errorf("load %+v %v %v", rev, ok, err)
		}
		rev, ok, err = c.LoadBefore(ctx, 1, tid2)
		if err != nil || !ok || string(rev.Data) != "one-1" || rev.End != tid2 {
			t.Errorf("load before %+v %v %v", rev, ok, err)
		}
		_, _, err = c.LoadBefore(ctx, 7, zeowire.MaxTid)
		var pk *zeowire.POSKeyError
		if !errors.As(err, &pk) || pk.Oid != 7 {
			t.Errorf("missing: %v", err)
		}
		h, err := c.History(ctx, 1, 10)
		if err != nil || len(h) != 2 || h[0].Tid != tid2 || string(h[1].Description) != "first" || string(h[1].User) != "/ alice" || h[0].Size != 5 {
			t.Errorf("history %+v %v", h, err)
		}
		info, err := c.Info(ctx)
		if err != nil || info.Name != "test" || info.Length != 2 || info.LastTid != tid2 || !info.Supports("IStorageIteration") {
			t.Errorf("info %+v %v", info, err)
		}
		var got []*Txn
		for txn, err := range c.Transactions(ctx, 0, 0) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, txn)
		}
		if len(got) != 2 || got[0].Tid != tid1 || len(got[0].Records) != 2 || string(got[0].Records[1].Data) != "one-1" ||
			got[0].Status != " " || string(got[0].User) != "/ alice" || !zeowire.Equal(got[0].Extension, zeowire.Dict{{Key: "k", Value: "v"}}) {
			t.Errorf("iteration %+v", got)
		}
		// A range, and breaking out early.
		n := 0
		for txn, err := range c.Transactions(ctx, tid2, tid2) {
			if err != nil || txn.Tid != tid2 {
				t.Fatal(txn, err)
			}
			n++
		}
		for range c.Transactions(ctx, 0, 0) {
			break
		}
		if n != 1 {
			t.Errorf("range gave %d", n)
		}
		if err := c.Pack(ctx, float64(time.Now().Unix())); err != nil {
			t.Errorf("pack: %v", err)
		}
		st, err := c.ServerStatus(ctx)
		if err != nil || len(st) == 0 {
			t.Errorf("status %v %v", st, err)
		}
		// A second client sees invalidations of the first's commits.
		c2, err := Connect(ctx, Options{Addrs: []string{s.Addr}})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		tid3, err := c2.Commit(ctx, nil, nil, nil, []Store{{Oid: 0, Serial: tid1, Data: []byte("root-2")}})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case inv := <-invCh:
			invs = append(invs, inv)
		case <-time.After(5 * time.Second):
			t.Fatal("no invalidation")
		}
		if invs[0].Tid != tid3 || len(invs[0].Oids) != 1 || invs[0].Oids[0] != 0 {
			t.Errorf("invalidation %+v", invs)
		}
	})
}

func TestFailover(t *testing.T) {
	zeotest.BothEncodings(t, func(t *testing.T, msgpack bool) {
		zeotest.NoLeaks(t)
		ctx := context.Background()
		st := memstore.New("shared")
		s1 := zeotest.Start(t, msgpack, st)
		s2 := zeotest.Start(t, msgpack, st)
		dead := deadAddr(t)

		// First address down: the second answers.
		c, err := Connect(ctx, Options{Addrs: []string{dead, s2.Addr}})
		if err != nil {
			t.Fatal(err)
		}
		if c.Addr() != s2.Addr {
			t.Errorf("connected to %s", c.Addr())
		}
		c.Close()

		// First dies mid-session: the next call reconnects to the second.
		var connects []string
		c, err = Connect(ctx, Options{Addrs: []string{s1.Addr, s2.Addr}, Backoff: 10 * time.Millisecond,
			OnConnect: func(a string, _ zeowire.Tid) { connects = append(connects, a) }})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tid, err := c.Commit(ctx, nil, nil, nil, []Store{{Oid: 0, Data: []byte("r")}})
		if err != nil {
			t.Fatal(err)
		}
		s1.Stop()
		<-c.Done()
		last, err := c.LastTransaction(ctx)
		if err != nil || last != tid || c.Addr() != s2.Addr {
			t.Errorf("after failover: %s %v at %s", last, err, c.Addr())
		}
		if len(connects) != 2 || connects[0] != s1.Addr || connects[1] != s2.Addr {
			t.Errorf("connects %v", connects)
		}
	})
}

func TestIterationResumesAfterFailover(t *testing.T) {
	zeotest.NoLeaks(t)
	ctx := context.Background()
	st := memstore.New("shared")
	s1 := zeotest.Start(t, false, st)
	s2 := zeotest.Start(t, true, st)
	c, err := Connect(ctx, Options{Addrs: []string{s1.Addr, s2.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var tids []zeowire.Tid
	for i := range 5 {
		tid, err := c.Commit(ctx, nil, nil, nil, []Store{{Oid: zeowire.Oid(i), Data: []byte{byte(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	var got []zeowire.Tid
	for txn, err := range c.Transactions(ctx, 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, txn.Tid)
		if len(got) == 2 {
			s1.Stop() // the rest comes from the second server
		}
	}
	if len(got) != 5 || got[2] != tids[2] || got[4] != tids[4] || c.Addr() != s2.Addr {
		t.Errorf("got %v want %v (at %s)", got, tids, c.Addr())
	}
}

func TestUnreachableAndRefused(t *testing.T) {
	zeotest.NoLeaks(t)
	ctx := context.Background()
	dead1, dead2 := deadAddr(t), deadAddr(t)
	var waits []string
	start := time.Now()
	_, err := Connect(ctx, Options{Addrs: []string{dead1, dead2}, Wait: 300 * time.Millisecond, Backoff: 50 * time.Millisecond,
		OnWait: func(m string) { waits = append(waits, m) }})
	var ue *UnreachableError
	if !errors.As(err, &ue) || len(ue.Errs) != 2 || !strings.HasPrefix(err.Error(), dead1+": connect: ") ||
		!strings.Contains(err.Error(), "; "+dead2+": connect: ") {
		t.Errorf("unreachable: %v", err)
	}
	// How many retries fit in the wait depends on the machine's load; at least
	// one "waiting" line must be said.
	if el := time.Since(start); el < 300*time.Millisecond || el > 3*time.Second || len(waits) < 1 ||
		!strings.HasPrefix(waits[0], "waiting for a ZEO server at "+dead1+", "+dead2+": retrying in 50ms") {
		t.Errorf("waited %s: %q", el, waits)
	}

	// A server that appears while the client waits is used.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srvc := make(chan *zeotest.Server, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			srvc <- nil
			return
		}
		srvc <- zeotest.ServeOn(t, ln, false, memstore.New("late"))
	}()
	c, err := Connect(ctx, Options{Addrs: []string{addr}, Wait: 5 * time.Second, Backoff: 20 * time.Millisecond})
	s := <-srvc
	if s == nil {
		t.Skip("port reused by somebody else")
	}
	defer s.Stop()
	if err != nil {
		t.Fatalf("late server: %v", err)
	}
	c.Close()

	// Unknown storage and read-only refusals are not waited for.
	ro := zeotest.Start(t, false, memstore.New("ro"), func(s *zeowire.Server) { s.ReadOnly = true })
	start = time.Now()
	_, err = Connect(ctx, Options{Addrs: []string{ro.Addr}, Storage: "nope", Wait: 5 * time.Second})
	var re *RegisterError
	if !errors.As(err, &re) || err.Error() != ro.Addr+`: register storage "nope": unknown storage` || time.Since(start) > 2*time.Second {
		t.Errorf("unknown storage: %v", err)
	}
	_, err = Connect(ctx, Options{Addrs: []string{ro.Addr}})
	if !errors.As(err, &re) || err.Error() != ro.Addr+`: register storage "1": read-only server or storage` {
		t.Errorf("read-only: %v", err)
	}
	c, err = Connect(ctx, Options{Addrs: []string{ro.Addr}, ReadOnlyFallback: true})
	if err != nil || !c.ReadOnly() {
		t.Fatalf("fallback: %v", err)
	}
	c.Close()

	// ruok without registering.
	b, a, err := Ruok(ctx, Options{Addrs: []string{dead1, ro.Addr}})
	if err != nil || a != ro.Addr || !strings.HasPrefix(string(b), `{"1": {"connections": `) {
		t.Errorf("ruok %s %s %v", b, a, err)
	}
}

func TestFetchBlob(t *testing.T) {
	zeotest.BothEncodings(t, func(t *testing.T, msgpack bool) {
		zeotest.NoLeaks(t)
		ctx := context.Background()
		st := memstore.New("blobs")
		if err := st.SetBlobDir(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		content := bytes.Repeat([]byte("0123456789abcdef"), 10000) // several chunks
		tmp := filepath.Join(st.BlobTempDir(), "upload")
		os.WriteFile(tmp, content, 0o600)
		tid := zeowire.TidFromTime(time.Now())
		stx, err := st.Begin(ctx, zeowire.TxnMeta{Tid: tid, Status: ' '})
		if err != nil {
			t.Fatal(err)
		}
		if err := stx.(zeowire.BlobTxn).StoreBlob(5, 0, []byte("\x80\x03cZODB.blob\nBlob\nq\x00.\x80\x03N."), tmp); err != nil {
			t.Fatal(err)
		}
		stx.Vote()
		if err := stx.Finish(); err != nil {
			t.Fatal(err)
		}
		s := zeotest.Start(t, msgpack, st)
		c, err := Connect(ctx, Options{Addrs: []string{s.Addr}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		out := filepath.Join(t.TempDir(), "b")
		if err := c.FetchBlob(ctx, 5, tid, out); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
			t.Errorf("blob: %d bytes, want %d", len(got), len(content))
		}
		err = c.FetchBlob(ctx, 5, tid+1, out)
		var pk *zeowire.POSKeyError
		if !errors.As(err, &pk) || !strings.HasPrefix(err.Error(), s.Addr+": sendBlob: ") {
			t.Errorf("missing blob: %v", err)
		}
	})
}

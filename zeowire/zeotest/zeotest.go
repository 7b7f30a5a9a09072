// Package zeotest holds what the tests of ZEO clients share: a zeowire
// server on 127.0.0.1 port 0 that stops with the test, a goroutine-leak
// check and a runner for both wire encodings. Like net/http/httptest it is
// imported by tests only.
package zeotest

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
)

// Server is a running zeowire.Server serving one storage named "1".
type Server struct {
	Srv  *zeowire.Server
	Addr string
	done chan error
	once sync.Once
}

// Start serves st as storage "1" on 127.0.0.1:0 in pickle ("Z5") or msgpack
// ("M5") mode; tweak adjusts the server before it starts. It stops when the
// test ends.
func Start(t testing.TB, msgpack bool, st zeowire.Storage, tweak ...func(*zeowire.Server)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeOn(t, ln, msgpack, st, tweak...)
}

// ServeOn is Start on a listener the test made.
func ServeOn(t testing.TB, ln net.Listener, msgpack bool, st zeowire.Storage, tweak ...func(*zeowire.Server)) *Server {
	s := &Server{Srv: &zeowire.Server{Storages: map[string]zeowire.Storage{"1": st}, Msgpack: msgpack},
		Addr: ln.Addr().String(), done: make(chan error, 1)}
	for _, f := range tweak {
		f(s.Srv)
	}
	go func() { s.done <- s.Srv.Serve(ln) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down (at most once; later calls do nothing).
func (s *Server) Stop() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Srv.Shutdown(ctx)
		<-s.done
	})
}

// NoLeaks fails the test if goroutines started during it are still running
// at its end (after a grace period for closing connections).
func NoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

// BothEncodings runs f as subtests "Z5" (pickle) and "M5" (msgpack).
func BothEncodings(t *testing.T, f func(t *testing.T, msgpack bool)) {
	t.Run("Z5", func(t *testing.T) { f(t, false) })
	t.Run("M5", func(t *testing.T) { f(t, true) })
}

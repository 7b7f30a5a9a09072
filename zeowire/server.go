package zeowire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of the Server limits.
const (
	DefaultRegisterTimeout = 60 * time.Second
	DefaultWriteTimeout    = 60 * time.Second
	DefaultMaxPendingCalls = 16
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("zeowire: server closed")

// Server is a ZEO 5 server. Set the fields, then call Serve with a listener;
// the fields must not change afterwards. The server does not own the
// storages: close them after Shutdown returns.
type Server struct {
	// Storages maps the storage names clients register with ("1", ...) to
	// the storages.
	Storages map[string]Storage
	// Order lists the storage names in configuration order (used by the ruok
	// probe); names missing from it follow in sorted order.
	Order []string
	// Logger receives connection, commit and error events; nil discards.
	Logger *slog.Logger
	// ReadOnly refuses writable registrations on every storage.
	ReadOnly bool
	// ReadOnlyStorages refuses writable registrations on the named storages.
	ReadOnlyStorages map[string]bool
	// Msgpack makes the server announce "M5" instead of "Z5". Clients may
	// answer either; their letter picks the connection's encoding.
	Msgpack bool
	// ClientConflictResolution returns write conflicts to the client for
	// resolution instead of failing the vote (zeo.conf
	// client-conflict-resolution); see the package documentation.
	ClientConflictResolution bool
	// InvalidationQueueSize is the number of recent commits kept per storage
	// for getInvalidations (default 100).
	InvalidationQueueSize int
	// InvalidationAge, if positive, lets getInvalidations answer a client
	// whose tid is older than the invalidation queue but younger than this
	// age by scanning the storage's transactions (it must be Iterable).
	InvalidationAge time.Duration
	// TransactionTimeout, if positive, disconnects a client that holds a
	// commit lock longer than this.
	TransactionTimeout time.Duration
	// MaxFrameSize caps incoming frames (default DefaultMaxFrameSize).
	MaxFrameSize uint32
	// OutboundQueue is the number of messages that may wait for a slow
	// client (default DefaultOutboundQueue). A client whose queue is full
	// when an invalidation must be queued is disconnected.
	OutboundQueue int
	// SpillThreshold is how many bytes of record data one transaction keeps
	// in memory between tpc_begin and vote; the rest goes to a temporary
	// file in TempDir (default DefaultSpillThreshold; negative: never).
	SpillThreshold int64
	// TempDir is where spill files go ("" for the system default).
	TempDir string
	// TLSConfig, if set, wraps every accepted connection in TLS.
	TLSConfig *tls.Config
	// RegisterTimeout is how long a new connection may take to complete
	// the TLS and ZEO handshakes and register a storage (default
	// DefaultRegisterTimeout; negative: no limit). A connection that has
	// not registered by then is closed, so half-open or silent sockets do
	// not pile up. Registered connections have no idle timeout: Python
	// clients stay idle for hours (spec 1.4).
	RegisterTimeout time.Duration
	// WriteTimeout is how long a write to a client may make no progress
	// (default DefaultWriteTimeout; negative: no limit). A client that
	// stops reading is disconnected after it, which aborts its transaction
	// and releases the commit lock it may hold.
	WriteTimeout time.Duration
	// MaxPendingCalls caps the calls of one connection answered later
	// from their own goroutine (vote waiting for the commit lock, undoLog,
	// undoInfo, pack) that may run at once (default DefaultMaxPendingCalls).
	// At the cap the server stops reading that connection until one is
	// answered: backpressure, not a disconnect. Other calls are answered in
	// order by the reader and a reply that cannot be written stops the
	// reading the same way, so a connection never has more than this many
	// unanswered requests in the server's hands.
	MaxPendingCalls int
	// Now is the clock used for tids and the start time (default time.Now).
	Now func() time.Time

	initOnce  sync.Once
	initErr   error
	log       *slog.Logger
	storages  map[string]*storageState
	names     []string
	startTime time.Time
	ctx       context.Context
	cancel    context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	nextConn  uint64
	closing   atomic.Bool
	connWG    sync.WaitGroup

	bytesIn, bytesOut atomic.Int64
}

// Traffic returns the bytes received and sent on ZEO connections so far
// (frame headers included).
func (s *Server) Traffic() (in, out int64) { return s.bytesIn.Load(), s.bytesOut.Load() }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// limit returns d, def for zero, and 0 (no limit) for a negative d.
func limit(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func (s *Server) registerTimeout() time.Duration {
	return limit(s.RegisterTimeout, DefaultRegisterTimeout)
}

func (s *Server) writeTimeout() time.Duration { return limit(s.WriteTimeout, DefaultWriteTimeout) }

// PreRegisterMaxFrameSize caps the frames of a connection that has not
// registered yet (only the handshake and register are allowed then).
const PreRegisterMaxFrameSize = 64 << 10

func (s *Server) maxFrameSize() uint32 {
	if s.MaxFrameSize == 0 {
		return DefaultMaxFrameSize
	}
	return s.MaxFrameSize
}

func (s *Server) maxPendingCalls() int {
	if s.MaxPendingCalls <= 0 {
		return DefaultMaxPendingCalls
	}
	return s.MaxPendingCalls
}

func (s *Server) init() error {
	s.initOnce.Do(func() {
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		if len(s.Storages) == 0 {
			s.initErr = errors.New("zeowire: no storages to serve")
			return
		}
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.startTime = s.now()
		s.storages = make(map[string]*storageState, len(s.Storages))
		seen := map[string]bool{}
		for _, n := range s.Order {
			if _, ok := s.Storages[n]; ok && !seen[n] {
				s.names = append(s.names, n)
				seen[n] = true
			}
		}
		var rest []string
		for n := range s.Storages {
			if !seen[n] {
				rest = append(rest, n)
			}
		}
		sort.Strings(rest)
		s.names = append(s.names, rest...)
		qsize := s.InvalidationQueueSize
		if qsize <= 0 {
			qsize = 100
		}
		for _, n := range s.names {
			st, err := newStorageState(s.ctx, s, n, s.Storages[n], qsize)
			if err != nil {
				s.initErr = fmt.Errorf("zeowire: storage %s: %w", n, err)
				return
			}
			s.storages[n] = st
		}
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*serverConn]struct{}{}
	})
	return s.initErr
}

// Serve accepts connections on ln until Shutdown (then it returns
// ErrServerClosed) or an accept error.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	s.log.Info("listening on " + ln.Addr().String()) // runzeo's wording, which scripts wait for
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			// Out of file descriptors or an aborted handshake: back off and
			// go on, as net/http does, instead of stopping the server.
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) ||
				errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.nextConn++
		id := s.nextConn
		s.connWG.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc, id)
	}
}

// Shutdown stops accepting, closes every connection (aborting transactions
// that were not voted and finished; a tpc_finish in progress completes), and
// waits for the connection goroutines until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		s.log.Info("server stopped")
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) announcement() string {
	if s.Msgpack {
		return "M" + ProtocolVersion
	}
	return "Z" + ProtocolVersion
}

func (s *Server) serveConn(nc net.Conn, id uint64) {
	defer s.connWG.Done()
	log := s.log.With("conn", id, "peer", nc.RemoteAddr().String())
	// Until register succeeds every read and write is bounded by the
	// registration deadline; register lifts the read deadline.
	regTimeout := s.registerTimeout()
	if regTimeout > 0 {
		nc.SetDeadline(time.Now().Add(regTimeout))
	}
	if s.TLSConfig != nil {
		tc := tls.Server(nc, s.TLSConfig)
		hctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				log.Warn("not registered in time (TLS handshake); closing", "timeout", regTimeout)
			} else {
				log.Warn("TLS handshake failed", "error", err)
			}
			nc.Close()
			return
		}
		nc = tc
	}
	// Until register, only the handshake and register (a few bytes) may
	// come: a small cap, so that unregistered peers cannot make the server
	// buffer MaxFrameSize each. register raises it.
	// The read buffer is small too (4 KiB instead of 64 KiB) until then.
	fr := newSmallFrameReader(nc, min(s.maxFrameSize(), PreRegisterMaxFrameSize))
	// Register before the handshake so Shutdown can close a connection that
	// never answers.
	c := &serverConn{s: s, id: id, nc: nc, slots: make(chan struct{}, s.maxPendingCalls())}
	c.setLogger(log)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()

	codec, ruok, err := serverHandshake(nc, fr, s.announcement())
	if err != nil {
		var he *HandshakeError
		if errors.As(err, &he) {
			log.Warn("bad handshake", "got", fmt.Sprintf("%q", he.Got))
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			log.Warn("not registered in time (ZEO handshake); closing", "timeout", regTimeout)
		} else if !isDisconnect(err) {
			log.Warn("handshake failed", "error", err)
		}
		nc.Close()
		return
	}
	if ruok {
		nc.Write(AppendFrame(nil, s.statusJSON()))
		nc.Close()
		return
	}
	// From here on writes have their own deadlines (WriteTimeout).
	nc.SetWriteDeadline(time.Time{})
	tr := newTransport(nc, fr, s.OutboundQueue)
	tr.writeTimeout = s.writeTimeout()
	tr.codec = codec
	tr.sent = &s.bytesOut
	s.mu.Lock()
	c.transport = tr
	closing := s.closing.Load()
	s.mu.Unlock()
	if closing {
		tr.closeNow(errors.New("server shutting down"))
		return
	}
	c.setLogger(log.With("encoding", string(codec.Letter())))
	c.logger().Info("connected")
	c.readLoop()
	c.cleanup()
}

func isDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// storageState is the server's bookkeeping for one served storage.
type storageState struct {
	s        *Server
	name     string
	storage  Storage
	readOnly bool
	lock     commitLock

	mu      sync.Mutex // conns, invq, lastTid, stats
	conns   map[*serverConn]struct{}
	invq    []Invalidation // newest first
	qsize   int
	lastTid Tid // last tid handed out (a failed vote burns one)

	loads atomic.Int64
	stats struct {
		stores, commits, aborts, activeTxns, conflicts int64
	}
}

func newStorageState(ctx context.Context, s *Server, name string, st Storage, qsize int) (*storageState, error) {
	ss := &storageState{
		s: s, name: name, storage: st, qsize: qsize,
		readOnly: s.ReadOnly || s.ReadOnlyStorages[name] || reportsReadOnly(st),
		conns:    map[*serverConn]struct{}{},
		lastTid:  st.LastTransaction(),
	}
	if rt, ok := st.(RecentTransactions); ok {
		recent, err := rt.Recent(ctx, qsize)
		if err != nil {
			return nil, fmt.Errorf("reading recent transactions: %w", err)
		}
		ss.invq = recent
	} else if ss.lastTid != Z64 {
		ss.invq = []Invalidation{{Tid: ss.lastTid}}
	}
	return ss, nil
}

func reportsReadOnly(st Storage) bool {
	r, ok := st.(ReadOnlyReporter)
	return ok && r.ReadOnly()
}

// nextTid chooses the tid of a transaction being voted now.
func (st *storageState) nextTid() Tid {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := TidFromTime(st.s.now()).LaterThan(max(st.lastTid, st.storage.LastTransaction()))
	st.lastTid = t
	return t
}

// useTid records an explicitly requested tid, refusing one that is not
// after the last one (the reference accepts it and breaks the database).
func (st *storageState) useTid(t Tid) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	last := max(st.lastTid, st.storage.LastTransaction())
	if t <= last {
		return &StorageTransactionError{Args: Tuple{fmt.Sprintf("requested tid %s is not after the last tid %s", t, last)}}
	}
	st.lastTid = t
	return nil
}

// commitLock is a first-come, first-served lock per storage.
type commitLock struct {
	mu     sync.Mutex
	holder *serverConn
	since  time.Time
	queue  []*lockWaiter
	timer  *time.Timer
	waited time.Duration // total time voters spent waiting
}

type lockWaiter struct {
	c      *serverConn
	ready  chan struct{}
	queued time.Time
}

// acquire queues c; the waiter's ready channel is closed once c holds it.
func (l *commitLock) acquire(c *serverConn, now time.Time) *lockWaiter {
	w := &lockWaiter{c: c, ready: make(chan struct{}), queued: now}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == nil {
		l.grant(w, now)
	} else {
		l.queue = append(l.queue, w)
	}
	return w
}

func (l *commitLock) grant(w *lockWaiter, now time.Time) {
	l.holder = w.c
	l.since = now
	l.waited += now.Sub(w.queued)
	if d := w.c.s.TransactionTimeout; d > 0 {
		c := w.c
		var timer *time.Timer
		timer = time.AfterFunc(d, func() {
			l.mu.Lock()
			stale := l.timer != timer // released (and maybe re-granted) meanwhile
			l.mu.Unlock()
			if stale {
				return
			}
			c.logger().Error(fmt.Sprintf("Transaction timeout after %d seconds", int(d.Seconds())))
			c.closeNow(errors.New("transaction timeout"))
		})
		l.timer = timer
	}
	close(w.ready)
}

// release gives up c's hold or queue place; the next waiter gets the lock.
func (l *commitLock) release(c *serverConn, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder != c {
		l.queue = slices.DeleteFunc(l.queue, func(w *lockWaiter) bool { return w.c == c })
		return
	}
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.holder = nil
	if len(l.queue) > 0 {
		w := l.queue[0]
		l.queue = l.queue[1:]
		l.grant(w, now)
	}
}

func (l *commitLock) status() (holderSince time.Time, held bool, waiting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since, l.holder != nil, len(l.queue)
}

// StorageStats are a served storage's counters, for monitoring (the
// server_status numbers, typed).
type StorageStats struct {
	Name        string
	Connections int
	Loads       int64 // loadBefore calls
	Stores      int64 // storea, restorea and deleteObject calls
	Commits     int64
	Aborts      int64
	ActiveTxns  int64
	Conflicts   int64
	Waiting     int           // voters queued for the commit lock
	LockHeld    bool          // a transaction holds the commit lock
	LockWait    time.Duration // total time voters waited for the lock
	LastTid     Tid
}

// Stats returns the counters of every storage, in Order.
func (s *Server) Stats() []StorageStats {
	if s.init() != nil {
		return nil
	}
	out := make([]StorageStats, 0, len(s.names))
	for _, n := range s.names {
		st := s.storages[n]
		st.lock.mu.Lock()
		held, waiting, waited := st.lock.holder != nil, len(st.lock.queue), st.lock.waited
		st.lock.mu.Unlock()
		st.mu.Lock()
		out = append(out, StorageStats{
			Name: n, Connections: len(st.conns), Loads: st.loads.Load(),
			Stores: st.stats.stores, Commits: st.stats.commits, Aborts: st.stats.aborts,
			ActiveTxns: st.stats.activeTxns, Conflicts: st.stats.conflicts,
			Waiting: waiting, LockHeld: held, LockWait: waited,
			LastTid: st.storage.LastTransaction(),
		})
		st.mu.Unlock()
	}
	return out
}

// Package client is a ZEO client for administration, on top of
// zeowire.ClientConn: it dials a list of servers in order (failover),
// keeps retrying with backoff while none answers (like a Zope instance at
// start-up), registers to one storage and offers typed admin calls: info,
// lastTransaction, loadBefore/loadSerial, history, transaction iteration
// (iterator_start/iterator_next/iterator_record_start/iterator_record_next),
// pack, server_status, the ruok probe, a small commit (for health checks and
// copies) and the invalidation stream.
//
// Choices a newcomer may question:
//
//   - A call that fails because the connection was lost reconnects (failing
//     over to the next address) and is repeated. Every admin call is safe to
//     repeat (reads, pack); a commit is never repeated, because a lost
//     tpc_finish may have committed. Iteration resumes after the last
//     transaction it delivered.
//   - Only unreachable servers are retried while waiting: a server that
//     answers but refuses the registration (unknown storage, read-only)
//     fails at once with a *RegisterError, because waiting will not fix it.
//   - Invalidations are handed to Options.OnInvalidate on the connection's
//     reader goroutine, so no extra goroutine or queue exists; the callback
//     must return quickly.
//   - ZEO has no timeouts, so a server that stops answering would hang its
//     clients forever: Options.CallTimeout bounds every call but pack.
//   - Info's last tid is the one the client knows (registration, its own
//     commits, invalidations), as Python's ClientStorage keeps it, so that
//     info makes the same calls as the Python client (checked against the
//     recorded sessions of the reference server).
//
// Errors name the address and the call: *UnreachableError (no server
// answered), *RegisterError (a server refused the registration),
// *ConnectionLostError (the connection broke and no server took over),
// *OpError (the server's answer, typed by zeowire, e.g.
// *zeowire.POSKeyError, or a malformed reply).
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zodbctl/zodbctl/zeowire"
)

// Options configure Connect.
type Options struct {
	// Addrs are tried in this order: "host:port", "[v6]:port" or a Unix
	// socket path.
	Addrs []string
	// Storage is the storage name to register with (default "1").
	Storage string
	// ReadOnly registers read-only (enough for reads, status and pack).
	ReadOnly bool
	// ReadOnlyFallback registers writable if the server allows it, else
	// read-only (see Client.ReadOnly).
	ReadOnlyFallback bool
	// Wait is how long to keep retrying when no server answers; 0 makes a
	// single round over Addrs.
	Wait time.Duration
	// Backoff is the first pause between rounds (default 500 ms); it doubles
	// up to MaxBackoff (default 10 s).
	Backoff, MaxBackoff time.Duration
	// DialTimeout bounds the connection and handshake with one address
	// (default 10 s).
	DialTimeout time.Duration
	// CallTimeout, if positive, bounds each call but pack (ZEO itself has
	// no timeouts: a server that stops answering would hang the client).
	CallTimeout time.Duration
	// TLS, if set, makes every connection use TLS.
	TLS *tls.Config
	// Heartbeat is passed to zeowire.ClientOptions (0: 60 s).
	Heartbeat time.Duration
	// OnWait is told, before each pause, what the client waits for.
	OnWait func(msg string)
	// OnConnect is told each time a connection is registered (the first
	// one and every reconnection).
	OnConnect func(addr string, lastTid zeowire.Tid)
	// OnInvalidate receives invalidateTransaction messages, on the reader
	// goroutine and in arrival order; it must not block for long.
	OnInvalidate func(Invalidation)
	// OnInfo receives the server's info({'length', 'size'}) messages.
	OnInfo func(zeowire.Dict)
}

// Invalidation is one invalidateTransaction message.
type Invalidation struct {
	Tid  zeowire.Tid
	Oids []zeowire.Oid
}

// AddrError is the failure of one address.
type AddrError struct {
	Addr string
	Op   string // "connect", "handshake", "register"
	Err  error
}

func (e *AddrError) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, e.Op+": ") { // zeowire names the call already
		return e.Addr + ": " + msg
	}
	return e.Addr + ": " + e.Op + ": " + msg
}
func (e *AddrError) Unwrap() error { return e.Err }

// UnreachableError reports that no server answered (within Options.Wait).
type UnreachableError struct {
	Errs   []*AddrError // the last failure of each address
	Waited time.Duration
}

func (e *UnreachableError) Error() string {
	parts := make([]string, len(e.Errs))
	for i, a := range e.Errs {
		parts[i] = a.Error()
	}
	s := strings.Join(parts, "; ")
	if e.Waited > 0 {
		s += fmt.Sprintf(" (gave up after waiting %s)", e.Waited.Round(time.Millisecond))
	}
	return s
}

// RegisterError reports that a server answered but refused the
// registration: unknown storage name (a ValueError) or a writable
// registration on a read-only server or storage (zeowire.ErrReadOnly).
type RegisterError struct {
	Addr    string
	Storage string
	Err     error
}

func (e *RegisterError) Error() string {
	if errors.Is(e.Err, zeowire.ErrReadOnly) {
		return fmt.Sprintf("%s: register storage %q: read-only server or storage", e.Addr, e.Storage)
	}
	var re *zeowire.RemoteError
	if errors.As(e.Err, &re) && re.Class == zeowire.ClassValueError {
		return fmt.Sprintf("%s: register storage %q: unknown storage", e.Addr, e.Storage)
	}
	return fmt.Sprintf("%s: register storage %q: %v", e.Addr, e.Storage, e.Err)
}
func (e *RegisterError) Unwrap() error { return e.Err }

// ConnectionLostError reports that the connection broke during an operation
// that cannot be repeated (a commit), or that reconnecting failed.
type ConnectionLostError struct {
	Addr string
	Op   string
	Err  error
}

func (e *ConnectionLostError) Error() string {
	return fmt.Sprintf("%s: %s: connection lost: %v", e.Addr, e.Op, e.Err)
}
func (e *ConnectionLostError) Unwrap() error { return e.Err }

// Client is a registered connection to one storage of one of the servers.
// Its methods may be called from several goroutines.
type Client struct {
	opts Options

	mu      sync.Mutex
	conn    *zeowire.ClientConn
	addr    string
	lastTid zeowire.Tid
	ro      bool
	closed  bool
	// blobs receives the receiveBlobChunk messages of sendBlob calls in
	// progress, keyed by (oid, serial).
	blobMu sync.Mutex
	blobs  map[[2]uint64]*blobSink
	// known is the newest tid this client knows of: registration, its own
	// commits and the invalidations received (as ClientStorage keeps
	// it). Atomic: the reader goroutine updates it without c.mu, which
	// reconnect holds while registering.
	known atomic.Uint64
}

// Connect dials the servers in order and registers; see Options.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("no server address")
	}
	if opts.Storage == "" {
		opts.Storage = "1"
	}
	c := &Client{opts: opts}
	if err := c.reconnect(ctx, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// Addr is the address of the current connection.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// RegisteredTid is the last tid the server reported at registration.
func (c *Client) RegisteredTid() zeowire.Tid {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastTid
}

// observe records a tid the client learned of.
func (c *Client) observe(tid zeowire.Tid) {
	for {
		old := c.known.Load()
		if uint64(tid) <= old || c.known.CompareAndSwap(old, uint64(tid)) {
			return
		}
	}
}

// KnownTid is the newest tid the client knows of without asking: the one
// registration answered, or a later one from its own commits or the
// invalidations it received.
func (c *Client) KnownTid() zeowire.Tid { return zeowire.Tid(c.known.Load()) }

// ReadOnly reports whether the current registration is read-only.
func (c *Client) ReadOnly() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ro
}

// Reconnect replaces the current connection, failing over as Connect does
// (for callers that noticed Done).
func (c *Client) Reconnect(ctx context.Context) error {
	c.mu.Lock()
	old := c.conn
	c.mu.Unlock()
	return c.reconnect(ctx, old)
}

// Encoding is 'Z' (pickle) or 'M' (msgpack), as chosen by the server.
func (c *Client) Encoding() byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Encoding()
}

// Done is closed when the current connection closes.
func (c *Client) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Done()
}

// Close closes the connection; the client cannot be used afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		c.conn.Close()
	}
	return nil
}

func (c *Client) clientOptions() zeowire.ClientOptions {
	return zeowire.ClientOptions{
		Async:     c.async,
		Heartbeat: c.opts.Heartbeat,
		TLS:       c.opts.TLS,
	}
}

func (c *Client) async(m zeowire.Message) {
	args, _ := m.Args.(zeowire.Tuple)
	switch m.Name {
	case "invalidateTransaction":
		if len(args) != 2 {
			return
		}
		tid, err := zeowire.AsTid(args[0])
		if err != nil {
			return
		}
		if c.opts.OnInvalidate == nil {
			c.observe(tid)
			return
		}
		c.observe(tid)
		inv := Invalidation{Tid: tid}
		var list []any
		switch l := args[1].(type) {
		case zeowire.List:
			list = l
		case zeowire.Tuple:
			list = l
		}
		for _, o := range list {
			if oid, err := zeowire.AsOid(o); err == nil {
				inv.Oids = append(inv.Oids, oid)
			}
		}
		c.opts.OnInvalidate(inv)
	case "receiveBlobChunk":
		if len(args) != 3 {
			return
		}
		oid, err1 := zeowire.AsOid(args[0])
		serial, err2 := zeowire.AsTid(args[1])
		chunk, ok := args[2].([]byte)
		if err1 != nil || err2 != nil || !ok {
			return
		}
		// Written under the lock: once FetchBlob removed its sink (a
		// timeout), nothing writes to its file any more.
		c.blobMu.Lock()
		if sink := c.blobs[[2]uint64{uint64(oid), uint64(serial)}]; sink != nil && sink.err == nil {
			_, sink.err = sink.w.Write(chunk)
		}
		c.blobMu.Unlock()
	case "info":
		if c.opts.OnInfo != nil && len(args) == 1 {
			if d, ok := args[0].(zeowire.Dict); ok {
				c.opts.OnInfo(d)
			}
		}
	}
}

// reconnect replaces the connection (old, if not nil, is the one that
// failed; a concurrent caller may already have replaced it).
func (c *Client) reconnect(ctx context.Context, old *zeowire.ClientConn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return zeowire.ErrClosed
	}
	if old != nil && c.conn != old {
		return nil // somebody else reconnected already
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	conn, addr, tid, ro, err := dialAny(ctx, &c.opts, c.clientOptions())
	if err != nil {
		return err
	}
	c.conn, c.addr, c.lastTid, c.ro = conn, addr, tid, ro
	c.known.Store(uint64(tid))
	if c.opts.OnConnect != nil {
		c.opts.OnConnect(addr, tid)
	}
	return nil
}

// dialAny makes rounds over the addresses until one registers, a server
// refuses the registration, or opts.Wait is over.
func dialAny(ctx context.Context, opts *Options, co zeowire.ClientOptions) (*zeowire.ClientConn, string, zeowire.Tid, bool, error) {
	var conn *zeowire.ClientConn
	var tid zeowire.Tid
	var ro bool
	addr, err := rounds(ctx, opts, func(addr string) (*AddrError, error) {
		var aerr *AddrError
		var rerr error
		conn, tid, ro, aerr, rerr = dialOne(ctx, opts, co, addr)
		return aerr, rerr
	})
	if err != nil {
		return nil, "", 0, false, err
	}
	return conn, addr, tid, ro, nil
}

// rounds calls try for each address in order until one succeeds (both
// results nil); it waits with backoff between rounds while every address is
// unreachable (aerr), up to opts.Wait. A refusal (rerr) from the last
// address that answered ends it at once.
func rounds(ctx context.Context, opts *Options, try func(addr string) (aerr *AddrError, rerr error)) (string, error) {
	start := time.Now()
	backoff := opts.Backoff
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	maxBackoff := opts.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 10 * time.Second
	}
	last := make([]*AddrError, len(opts.Addrs))
	for {
		var refused error
		for i, addr := range opts.Addrs {
			aerr, rerr := try(addr)
			if aerr == nil && rerr == nil {
				return addr, nil
			}
			if rerr != nil {
				// Another server may have the storage, or be writable.
				refused = rerr
				last[i] = &AddrError{Addr: addr, Op: "register", Err: rerr}
				continue
			}
			last[i] = aerr
		}
		if refused != nil {
			return "", refused
		}
		waited := time.Since(start)
		if ctx.Err() != nil || waited >= opts.Wait {
			ue := &UnreachableError{Errs: last}
			if opts.Wait > 0 {
				ue.Waited = waited.Truncate(time.Millisecond)
			}
			return "", ue
		}
		pause := min(backoff, opts.Wait-waited)
		if opts.OnWait != nil {
			opts.OnWait(fmt.Sprintf("waiting for a ZEO server at %s: retrying in %s (%s left)",
				strings.Join(opts.Addrs, ", "), pause.Round(time.Millisecond),
				(opts.Wait - waited).Round(time.Second)))
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", &UnreachableError{Errs: last, Waited: time.Since(start).Truncate(time.Millisecond)}
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// dialOne connects to addr and registers. aerr is a failure to reach the
// server, rerr a refused registration.
func dialOne(ctx context.Context, opts *Options, co zeowire.ClientOptions, addr string) (conn *zeowire.ClientConn, tid zeowire.Tid, ro bool, aerr *AddrError, rerr error) {
	timeout := opts.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := zeowire.Dial(dctx, addr, co)
	if err != nil {
		return nil, 0, false, &AddrError{Addr: addr, Op: "connect", Err: stripAddr(err, addr)}, nil
	}
	ro = opts.ReadOnly
	tid, err = conn.Register(dctx, opts.Storage, ro)
	if err != nil && !ro && opts.ReadOnlyFallback && errors.Is(err, zeowire.ErrReadOnly) {
		// A refused register leaves the connection unregistered: try again.
		ro = true
		tid, err = conn.Register(dctx, opts.Storage, true)
	}
	if err != nil {
		conn.Close()
		if !isRemote(err) {
			return nil, 0, false, &AddrError{Addr: addr, Op: "register", Err: err}, nil
		}
		return nil, 0, false, nil, &RegisterError{Addr: addr, Storage: opts.Storage, Err: err}
	}
	return conn, tid, ro, nil, nil
}

func isRemote(err error) bool {
	var re *zeowire.RemoteError
	return errors.As(err, &re) || errors.Is(err, zeowire.ErrReadOnly)
}

// stripAddr removes a leading "addr: " that zeowire.Dial adds, since
// AddrError names the address itself.
func stripAddr(err error, addr string) error {
	if s := err.Error(); strings.HasPrefix(s, addr+": ") {
		return errors.New(strings.TrimPrefix(s, addr+": "))
	}
	return err
}

// lost reports whether err came from a broken connection rather than from
// an answer of the server.
func lost(conn *zeowire.ClientConn, err error) bool {
	if err == nil || isRemote(err) {
		return false
	}
	var pk *zeowire.POSKeyError
	var ce *zeowire.ConflictError
	var ste *zeowire.StorageTransactionError
	if errors.As(err, &pk) || errors.As(err, &ce) || errors.As(err, &ste) {
		return false
	}
	return conn.Err() != nil
}

// callContext bounds one call by Options.CallTimeout (pack excepted: a
// pack takes as long as it takes).
func (c *Client) callContext(ctx context.Context, op string) (context.Context, context.CancelFunc) {
	if c.opts.CallTimeout <= 0 || op == "pack" {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.CallTimeout)
}

// call is conn.Call bounded by Options.CallTimeout.
func (c *Client) call(ctx context.Context, conn *zeowire.ClientConn, name string, args ...any) (any, error) {
	cctx, cancel := c.callContext(ctx, name)
	defer cancel()
	return conn.Call(cctx, name, args...)
}

// maxReconnects bounds how often one operation reconnects.
const maxReconnects = 3

// do runs f on the current connection; when the connection is lost it
// reconnects (failing over) and runs f again.
func (c *Client) do(ctx context.Context, op string, f func(context.Context, *zeowire.ClientConn) error) error {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		conn, addr, closed := c.conn, c.addr, c.closed
		c.mu.Unlock()
		if closed || conn == nil {
			return fmt.Errorf("%s: %s: %w", addr, op, zeowire.ErrClosed)
		}
		cctx, cancel := c.callContext(ctx, op)
		err := f(cctx, conn)
		cancel()
		if err == nil {
			return nil
		}
		if !lost(conn, err) || ctx.Err() != nil {
			return &OpError{Addr: addr, Op: op, Err: err}
		}
		if attempt >= maxReconnects {
			return &ConnectionLostError{Addr: addr, Op: op, Err: err}
		}
		if rerr := c.reconnect(ctx, conn); rerr != nil {
			return &ConnectionLostError{Addr: addr, Op: op, Err: fmt.Errorf("%v; reconnecting: %w", conn.Err(), rerr)}
		}
	}
}

// OpError is a failed call: the address, the operation and the server's
// answer (a typed zeowire error such as *zeowire.POSKeyError) or the local
// failure.
type OpError struct {
	Addr string
	Op   string
	Err  error
}

func (e *OpError) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, e.Op+": ") { // zeowire names the call already
		return e.Addr + ": " + msg
	}
	return e.Addr + ": " + e.Op + ": " + msg
}
func (e *OpError) Unwrap() error { return e.Err }

// Ruok sends the ruok probe (no registration) to the first address that
// answers, waiting like Connect, and returns its JSON text and the address.
func Ruok(ctx context.Context, opts Options) ([]byte, string, error) {
	timeout := opts.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var out []byte
	addr, err := rounds(ctx, &opts, func(addr string) (*AddrError, error) {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		b, err := zeowire.Ruok(dctx, addr)
		if err != nil {
			return &AddrError{Addr: addr, Op: "ruok", Err: stripAddr(err, addr)}, nil
		}
		out = b
		return nil, nil
	})
	return out, addr, err
}

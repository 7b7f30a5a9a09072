package zeowire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ClientOptions configure a ClientConn.
type ClientOptions struct {
	// Async receives the server's async messages (invalidateTransaction,
	// info, receiveBlob*) on the connection's reader goroutine, in arrival
	// order; it must not block for long. Nil discards them.
	Async func(Message)
	// Heartbeat is the interval of the (-1, 0, ".reply", None) keep-alive;
	// 0 means the Python client's 60 s, negative disables it.
	Heartbeat time.Duration
	// MaxFrameSize caps incoming frames (default DefaultMaxFrameSize).
	MaxFrameSize uint32
	// TLS, if set, makes Dial speak TLS (see ClientTLSConfig).
	TLS *tls.Config
}

// ClientConn is a client connection to a ZEO 5 server: calls are matched
// with their replies by message id (replies may come out of order), async
// server messages go to ClientOptions.Async.
type ClientConn struct {
	t    *transport
	opts ClientOptions

	mu      sync.Mutex
	nextID  int64
	pending map[string]chan Message
	readErr error
}

// Dial connects to addr ("host:port", or a path for a Unix socket) and
// performs the handshake.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*ClientConn, error) {
	network := "tcp"
	if containsSlash(addr) {
		network = "unix"
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if opts.TLS != nil {
		cfg := opts.TLS
		if cfg.ServerName == "" && network == "tcp" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("%s: TLS handshake: %w", addr, err)
		}
		nc = tc
	}
	c, err := NewClientConn(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return c, nil
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// NewClientConn performs the client handshake on an established
// connection (plain or TLS) and starts its reader.
func NewClientConn(ctx context.Context, nc net.Conn, opts ClientOptions) (*ClientConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	fr := NewFrameReader(nc, opts.MaxFrameSize)
	codec, err := clientHandshake(nc, fr)
	nc.SetDeadline(time.Time{})
	if err != nil {
		return nil, err
	}
	t := newTransport(nc, fr, 0)
	t.codec = codec
	c := &ClientConn{t: t, opts: opts, pending: map[string]chan Message{}}
	go c.readLoop()
	hb := opts.Heartbeat
	if hb == 0 {
		hb = 60 * time.Second
	}
	if hb > 0 {
		go c.heartbeat(hb)
	}
	return c, nil
}

// Encoding returns 'Z' (pickle) or 'M' (msgpack).
func (c *ClientConn) Encoding() byte { return c.t.codec.Letter() }

// Done is closed when the connection is closed.
func (c *ClientConn) Done() <-chan struct{} { return c.t.done }

// Err returns why the connection closed (nil while open).
func (c *ClientConn) Err() error {
	select {
	case <-c.t.done:
		return c.t.closeErr
	default:
		return nil
	}
}

// Close closes the connection; pending calls fail with ErrClosed.
func (c *ClientConn) Close() error {
	c.t.closeNow(ErrClosed)
	return nil
}

func (c *ClientConn) heartbeat(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	p, _ := c.t.encode(&Message{ID: int64(-1), Kind: KindReply, Name: ReplyName})
	for {
		select {
		case <-c.t.done:
			return
		case <-tick.C:
			if c.t.send(p) != nil {
				return
			}
		}
	}
}

func idKey(id any) (string, error) {
	b, err := AppendMsgpackValue(nil, id)
	return string(b), err
}

func (c *ClientConn) readLoop() {
	var err error
	for {
		var p []byte
		p, err = c.t.fr.ReadFrame()
		if err != nil {
			break
		}
		var m Message
		m, err = c.t.codec.DecodeMessage(p)
		c.t.fr.Release()
		if err != nil {
			break
		}
		switch m.Kind {
		case KindReply, KindError:
			key, kerr := idKey(m.ID)
			c.mu.Lock()
			ch := c.pending[key]
			delete(c.pending, key)
			c.mu.Unlock()
			if kerr != nil || ch == nil {
				continue // reply for an unknown id: ignored, as Python does
			}
			ch <- m
		case KindAsync:
			if c.opts.Async != nil {
				c.opts.Async(m)
			}
		default:
			err = fmt.Errorf("server made a synchronous call %q", m.Name)
		}
		if err != nil {
			break
		}
	}
	if err == nil || isDisconnect(err) {
		err = errors.New("connection closed by the server")
	}
	c.mu.Lock()
	c.readErr = err
	c.mu.Unlock()
	c.t.closeNow(err)
}

// Call makes a synchronous call with the next message id and waits for its
// reply. An exception reply is returned as a typed error (see
// ErrorFromReply).
func (c *ClientConn) Call(ctx context.Context, name string, args ...any) (any, error) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	return c.CallID(ctx, id, name, args...)
}

// CallID is Call with a caller-chosen message id (Python uses (oid, tid) for
// loadBefore).
func (c *ClientConn) CallID(ctx context.Context, id any, name string, args ...any) (any, error) {
	key, err := idKey(id)
	if err != nil {
		return nil, err
	}
	p, err := c.t.encode(&Message{ID: id, Kind: KindCall, Name: name, Args: Tuple(args)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ch := make(chan Message, 1)
	c.mu.Lock()
	if _, dup := c.pending[key]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: message id %s already in flight", name, Repr(id))
	}
	c.pending[key] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, key)
		c.mu.Unlock()
	}
	if err := c.t.send(p); err != nil {
		forget()
		return nil, c.closedErr(name)
	}
	select {
	case m := <-ch:
		if m.Kind == KindError {
			return nil, ErrorFromReply(m.Args)
		}
		return m.Args, nil
	case <-c.t.done:
		// A reply may have raced with the close.
		select {
		case m := <-ch:
			if m.Kind == KindError {
				return nil, ErrorFromReply(m.Args)
			}
			return m.Args, nil
		default:
		}
		forget()
		return nil, c.closedErr(name)
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("%s: %w", name, ctx.Err())
	}
}

// closedErr is the error of a call on a closed or broken connection; it
// always satisfies errors.Is(err, ErrClosed).
func (c *ClientConn) closedErr(name string) error {
	c.mu.Lock()
	err := c.readErr
	c.mu.Unlock()
	if err == nil || errors.Is(err, ErrClosed) {
		return fmt.Errorf("%s: %w", name, ErrClosed)
	}
	return fmt.Errorf("%s: %w (%v)", name, ErrClosed, err)
}

// Async sends a one-way call (message id 0, flags True).
func (c *ClientConn) Async(name string, args ...any) error {
	p, err := c.t.encode(&Message{ID: int64(0), Kind: KindAsync, Name: name, Args: Tuple(args)})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := c.t.send(p); err != nil {
		return c.closedErr(name)
	}
	return nil
}

// Register selects the storage; it returns the storage's last tid.
func (c *ClientConn) Register(ctx context.Context, storage string, readOnly bool) (Tid, error) {
	r, err := c.Call(ctx, "register", storage, readOnly)
	if err != nil {
		return 0, err
	}
	return AsTid(r)
}

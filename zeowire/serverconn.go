package zeowire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// serverConn is one client connection of the server.
type serverConn struct {
	*transport
	s   *Server
	id  uint64
	nc  net.Conn
	log atomic.Pointer[slog.Logger] // grows attributes at register and set_client_label

	// Set by register; read only by the reader goroutine and, after
	// register, by the goroutines it starts.
	st       *storageState
	readOnly bool
	label    string

	// slots holds a token per call answered from its own goroutine
	// (Server.MaxPendingCalls).
	slots chan struct{}

	iters    map[int64]any
	nextIter int64
	blob     *blobUpload

	// While a blob stream is sent (holding), messages from other
	// goroutines wait in held so that the stream stays contiguous.
	outMu   sync.Mutex
	holding bool
	held    [][]byte

	mu     sync.Mutex // txn and closed
	txn    *zeoTxn
	closed bool
}

func (c *serverConn) logger() *slog.Logger     { return c.log.Load() }
func (c *serverConn) setLogger(l *slog.Logger) { c.log.Store(l) }

// goDeferred runs fn, a call answered later, on its own goroutine once one
// of the connection's pending-call slots is free. Waiting for a slot
// blocks the reader (backpressure). false: the connection or the server
// closed while waiting, and fn does not run.
func (c *serverConn) goDeferred(ctx context.Context, fn func()) bool {
	select {
	case c.slots <- struct{}{}:
	default:
		c.logger().Debug("pending-call cap reached; reading paused", "cap", cap(c.slots))
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		case <-c.done:
			return false
		}
	}
	go func() {
		defer func() { <-c.slots }()
		fn()
	}()
	return true
}

// errCloseConn makes the reader close the connection without a reply.
var errCloseConn = errors.New("close connection")

// errDeferred means the handler answers later by itself.
var errDeferred = errors.New("reply deferred")

func (c *serverConn) readLoop() {
	// Calls (and the deferred work they start) stop when the connection
	// ends or the server shuts down.
	ctx, cancel := context.WithCancel(c.s.ctx)
	defer cancel()
	for {
		p, err := c.fr.ReadFrame()
		if err != nil {
			var tl *FrameTooLargeError
			switch {
			case errors.As(err, &tl):
				c.logger().Warn("frame too large; closing", "error", err)
			case c.st == nil && errors.Is(err, os.ErrDeadlineExceeded):
				c.logger().Warn("not registered in time; closing", "timeout", c.s.registerTimeout())
			case isDisconnect(err):
				select {
				case <-c.done:
					// Closed by the server: say why.
					c.logger().Info("disconnected", "reason", c.closeErr)
				default:
					c.logger().Info("disconnected")
				}
			default:
				select {
				case <-c.done:
					c.logger().Info("disconnected", "reason", c.closeErr)
				default:
					c.logger().Warn("read failed; closing", "error", err)
				}
			}
			return
		}
		c.s.bytesIn.Add(int64(len(p)) + 4)
		m, err := c.codec.DecodeMessage(p)
		c.fr.Release()
		if err != nil {
			c.logger().Warn("undecodable message; closing", "error", err)
			return
		}
		if m.IsHeartbeat() {
			continue
		}
		if !c.handle(ctx, &m) {
			select {
			case <-c.done:
				// The transport closed under the call (a write failed or
				// timed out, or the server closed it): say why.
				c.logger().Info("disconnected", "reason", c.closeErr)
			default:
			}
			return
		}
	}
}

// handle runs one message; false closes the connection.
func (c *serverConn) handle(ctx context.Context, m *Message) bool {
	if m.Kind != KindCall && m.Kind != KindAsync {
		c.logger().Warn("unexpected reply from client; closing", "msgid", Repr(m.ID))
		return false
	}
	var meth *method
	if c.st == nil {
		if m.Name == "register" {
			meth = &registerMethod
		}
	} else {
		meth = methods[m.Name]
	}
	if meth == nil {
		c.logger().Warn("Invalid method; closing", "method", m.Name)
		return false
	}
	args, err := meth.bind(m.Name, m.Args)
	var result any
	if err == nil {
		result, err = meth.fn(c, ctx, m, args)
		if meth == &registerMethod && err == nil && c.st != nil {
			// Registered: no read deadline any more (spec 1.4), and
			// frames up to MaxFrameSize.
			c.nc.SetReadDeadline(time.Time{})
			c.fr.max = c.s.maxFrameSize()
			c.fr.resize(frameReadBuffer)
		}
	}
	if err == errDeferred {
		return true
	}
	if err == errCloseConn {
		return false
	}
	var prefix []byte
	if ra, ok := result.(replyAfter); ok {
		prefix, result = ra.frame, ra.result
	}
	if m.Kind == KindAsync {
		if prefix != nil && !c.queueOther(prefix, true) {
			return false
		}
		if err != nil {
			c.logger().Warn("async call failed; closing", "method", m.Name, "error", err)
			return false
		}
		return true
	}
	return c.replyWithPrefix(m.ID, result, err, prefix) == nil
}

// replyAfter is a handler result whose reply must follow frame (already
// encoded) in the same write: tpc_finish's info message.
type replyAfter struct {
	frame  []byte
	result any
}

// reply sends the result or the exception reply for msgid.
func (c *serverConn) reply(msgid, result any, err error) error {
	return c.replyWithPrefix(msgid, result, err, nil)
}

func (c *serverConn) replyWithPrefix(msgid, result any, err error, prefix []byte) error {
	var m Message
	if err != nil {
		class, args := ExceptionReply(err)
		if !quietError(err) && !errors.Is(err, ErrClosed) {
			c.logger().Warn("call failed", "error", err, "class", class)
		}
		m = Message{ID: msgid, Kind: KindError, Name: ReplyName, Args: Tuple{class, args}}
	} else {
		m = Message{ID: msgid, Kind: KindReply, Name: ReplyName, Args: result}
	}
	p, encErr := c.encode(&m)
	if encErr != nil {
		c.logger().Error("cannot encode reply; closing", "error", encErr)
		c.closeNow(encErr)
		return encErr
	}
	if prefix != nil {
		p = append(prefix, p...)
	}
	if !c.queueOther(p, true) {
		return ErrClosed
	}
	return nil
}

// sendAsync sends a server-to-client async message.
func (c *serverConn) sendAsync(name string, args Tuple) error {
	p, err := c.encode(&Message{ID: int64(0), Kind: KindAsync, Name: name, Args: args})
	if err != nil {
		return err
	}
	if !c.queueOther(p, true) {
		return ErrClosed
	}
	return nil
}

// sendOwn sends a message of the blob stream (bypassing the hold).
func (c *serverConn) sendOwn(name string, args Tuple) error {
	p, err := c.encode(&Message{ID: int64(0), Kind: KindAsync, Name: name, Args: args})
	if err != nil {
		return err
	}
	return c.send(p)
}

// maxHeld bounds the messages held back during a blob stream.
const maxHeld = 10000

// queueOther queues a payload, or holds it while a blob stream is sent.
// Without block it never waits: false means the client is too slow (or
// gone).
func (c *serverConn) queueOther(p []byte, block bool) bool {
	c.outMu.Lock()
	if c.holding {
		if len(c.held) >= maxHeld && !block {
			c.outMu.Unlock()
			return false
		}
		c.held = append(c.held, p)
		c.outMu.Unlock()
		return true
	}
	ok := c.trySend(p)
	c.outMu.Unlock()
	if ok || !block {
		return ok
	}
	return c.send(p) == nil
}

// holdOthers starts or ends a blob stream.
func (c *serverConn) holdOthers(on bool) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.holding = on
	if on {
		return
	}
	for _, p := range c.held {
		if !c.trySend(p) {
			select {
			case <-c.done:
				// Closed during the stream: nothing to deliver.
				c.held = nil
				return
			default:
			}
			c.logger().Warn("client too slow: outbound queue full; closing")
			c.closeNow(errors.New("outbound queue full"))
			break
		}
	}
	c.held = nil
}

// quietError: the reference does not log these (they are ordinary).
func quietError(err error) bool {
	var ce *ConflictError
	var pk *POSKeyError
	return errors.As(err, &ce) || errors.As(err, &pk)
}

// cleanup runs once the reader has stopped: abort the transaction, release
// the commit lock, drop iterators, unregister.
func (c *serverConn) cleanup() {
	c.close(errors.New("connection closed"))
	c.mu.Lock()
	c.closed = true
	if c.txn != nil {
		c.logger().Info("aborting the transaction of a closed connection")
		c.abortTxnLocked()
	}
	c.mu.Unlock()
	for _, it := range c.iters {
		if ti, ok := it.(*txnIter); ok {
			ti.it.Close()
		}
	}
	c.iters = nil
	c.blob.discard()
	c.blob = nil
	if st := c.st; st != nil {
		st.mu.Lock()
		delete(st.conns, c)
		st.mu.Unlock()
	}
}

// shutdown closes the connection for Server.Shutdown, whatever its stage.
func (c *serverConn) shutdown() {
	c.s.mu.Lock()
	tr := c.transport
	c.s.mu.Unlock()
	if tr == nil {
		c.nc.Close()
		return
	}
	tr.closeNow(errors.New("server shutting down"))
}

func (c *serverConn) String() string { return fmt.Sprintf("conn %d", c.id) }

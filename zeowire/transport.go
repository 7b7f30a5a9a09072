package zeowire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ProtocolVersion is the only ZEO protocol version spoken: "5".
const ProtocolVersion = "5"

// ruokProbe is the client "handshake" asking for a JSON status instead.
const ruokProbe = "ruok"

// HandshakeError reports a peer that does not speak ZEO 5.
type HandshakeError struct {
	Got []byte
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("bad handshake %q", e.Got)
}

// ErrClosed is returned for operations on a closed connection.
var ErrClosed = errors.New("zeo connection closed")

// DefaultOutboundQueue is how many encoded messages may wait for the socket
// on one connection.
const DefaultOutboundQueue = 1024

// maxQueuedBytes bounds the bytes waiting for one connection's socket (a
// single larger message is still accepted when nothing else waits).
const maxQueuedBytes = 64 << 20

// transport is the part shared by server connections and ClientConn: a
// frame reader used by one reading goroutine, and a bounded queue of
// encoded frames written to the socket by one writer at a time.
//
// Writing: a goroutine that may block (the connection's own reader sending
// a reply, a client making a call) writes the queue itself when no write is
// in progress, saving a goroutine hand-off per message; trySend (used for
// messages from other connections, e.g. invalidations) only queues and
// wakes the connection's background writer, so a slow peer never blocks
// the sender. Queued frames go out in one writev.
type transport struct {
	nc    net.Conn
	fr    *FrameReader
	codec Codec
	max   int // queue bound

	mu           sync.Mutex
	space        *sync.Cond // the queue shrank, or the connection closed
	pending      [][]byte   // framed messages waiting for the socket
	pendingBytes int
	spare        [][]byte
	writing      bool // someone is writing pending to the socket
	closing      bool // graceful close: flush, then close the socket
	dead         bool // socket closed or failed: drop everything

	// writeTimeout, if positive, bounds how long a socket write may make
	// no progress; then the connection fails. Set before the first send.
	writeTimeout time.Duration

	sent      *atomic.Int64 // if set, counts the bytes written
	kick      chan struct{} // wakes the background writer
	done      chan struct{} // closed when the connection closes
	closeOnce sync.Once
	closeErr  error // why the connection was closed, set before done closes
}

func newTransport(nc net.Conn, fr *FrameReader, queue int) *transport {
	if queue <= 0 {
		queue = DefaultOutboundQueue
	}
	t := &transport{nc: nc, fr: fr, max: queue, kick: make(chan struct{}, 1), done: make(chan struct{})}
	t.space = sync.NewCond(&t.mu)
	go t.backgroundWriter()
	return t
}

func (t *transport) backgroundWriter() {
	for {
		select {
		case <-t.kick:
			t.mu.Lock()
			if t.writing {
				t.mu.Unlock()
				continue // the current writer will see the new frames
			}
			t.writing = true
			t.flushLocked()
			t.mu.Unlock()
		case <-t.done:
			return
		}
	}
}

// flushLocked writes pending frames until the queue is empty; the caller
// holds mu and has set writing. It returns with mu held and writing unset.
func (t *transport) flushLocked() {
	for len(t.pending) > 0 && !t.dead {
		batch := t.pending
		t.pending = t.spare[:0]
		t.pendingBytes = 0
		t.spare = nil
		t.mu.Unlock()
		n, err := t.write(batch)
		if t.sent != nil {
			t.sent.Add(n)
		}
		clear(batch)
		t.mu.Lock()
		if t.spare == nil {
			t.spare = batch[:0]
		}
		t.space.Broadcast()
		if err != nil && !t.dead {
			t.dead = true
			t.mu.Unlock()
			t.close(fmt.Errorf("write: %w", err))
			t.mu.Lock()
		}
	}
	t.writing = false
	if t.closing || t.dead {
		t.pending, t.pendingBytes = nil, 0
		t.nc.Close()
		t.dead = true
		t.space.Broadcast()
	}
}

// write writes the frames of batch to the socket. With a write timeout,
// a write that times out after some progress is resumed with a fresh
// deadline: only a peer that takes nothing for writeTimeout fails.
func (t *transport) write(batch [][]byte) (int64, error) {
	if t.writeTimeout <= 0 {
		if len(batch) == 1 {
			n, err := t.nc.Write(batch[0])
			return int64(n), err
		}
		bufs := net.Buffers(batch)
		return bufs.WriteTo(t.nc)
	}
	if len(batch) == 1 {
		// No net.Buffers here: its header would escape, an allocation
		// per reply.
		p := batch[0]
		var total int64
		for {
			t.nc.SetWriteDeadline(time.Now().Add(t.writeTimeout))
			n, err := t.nc.Write(p)
			total += int64(n)
			p = p[n:]
			if err != nil && n > 0 && len(p) > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				continue // progress: a fresh deadline for the rest
			}
			return total, t.writeErr(err)
		}
	}
	var total int64
	bufs := net.Buffers(batch)
	for {
		t.nc.SetWriteDeadline(time.Now().Add(t.writeTimeout))
		n, err := bufs.WriteTo(t.nc) // consumes what it wrote
		total += n
		if err != nil && n > 0 && len(bufs) > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		return total, t.writeErr(err)
	}
}

// writeErr says what a write deadline means.
func (t *transport) writeErr(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("peer read nothing for %v: %w", t.writeTimeout, err)
	}
	return err
}

// send queues a framed message, waiting while the queue is full, and
// writes the queue itself if no write is in progress.
func (t *transport) send(p []byte) error {
	t.mu.Lock()
	for t.full(len(p)) && !t.dead && !t.closing {
		t.space.Wait()
	}
	if t.dead || t.closing {
		t.mu.Unlock()
		return ErrClosed
	}
	t.pending = append(t.pending, p)
	t.pendingBytes += len(p)
	if !t.writing {
		t.writing = true
		t.flushLocked()
	}
	t.mu.Unlock()
	return nil
}

// full reports whether n more bytes would exceed the queue's bounds.
func (t *transport) full(n int) bool {
	return len(t.pending) >= t.max || (len(t.pending) > 0 && t.pendingBytes+n > maxQueuedBytes)
}

// trySend queues a framed message without waiting or writing; false if the
// queue is full or the connection closed.
func (t *transport) trySend(p []byte) bool {
	t.mu.Lock()
	if t.dead || t.closing || t.full(len(p)) {
		t.mu.Unlock()
		return false
	}
	t.pending = append(t.pending, p)
	t.pendingBytes += len(p)
	writing := t.writing
	t.mu.Unlock()
	if !writing {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// close shuts the connection down once: what is queued is still written,
// then the socket is closed (which also ends the reader).
func (t *transport) close(reason error) {
	t.closeOnce.Do(func() {
		t.closeErr = reason
		close(t.done)
	})
	t.mu.Lock()
	t.closing = true
	t.space.Broadcast()
	if !t.writing {
		if len(t.pending) > 0 && !t.dead {
			t.writing = true
			// Flush from a goroutine: the caller may be a committer that
			// must not block on this peer.
			go func() {
				t.mu.Lock()
				t.flushLocked()
				t.mu.Unlock()
			}()
		} else {
			t.dead = true
			t.pending, t.pendingBytes = nil, 0
			t.nc.Close()
		}
	}
	t.mu.Unlock()
}

// closeNow closes the socket at once, dropping what is queued.
func (t *transport) closeNow(reason error) {
	t.closeOnce.Do(func() {
		t.closeErr = reason
		close(t.done)
	})
	t.mu.Lock()
	t.dead = true
	t.closing = true
	t.pending, t.pendingBytes = nil, 0
	t.space.Broadcast()
	t.mu.Unlock()
	// Closing while another goroutine writes is safe and makes it fail.
	t.nc.Close()
}

// sizeHint estimates the encoded size of a value, so that a reply with a
// large record is encoded into one allocation.
func sizeHint(v any, depth int) int {
	switch x := v.(type) {
	case []byte:
		return len(x) + 5
	case string:
		return len(x) + 5
	case Tuple:
		if depth < 4 {
			n := 2
			for _, e := range x {
				n += sizeHint(e, depth+1)
			}
			return n
		}
	case List:
		if depth < 4 {
			n := 2
			for _, e := range x {
				n += sizeHint(e, depth+1)
			}
			return n
		}
	case Dict:
		if depth < 4 {
			n := 2
			for _, kv := range x {
				n += sizeHint(kv.Key, depth+1) + sizeHint(kv.Value, depth+1)
			}
			return n
		}
	}
	return 10
}

// encode builds the frame (header and payload) of m with the connection's
// codec.
func (t *transport) encode(m *Message) ([]byte, error) {
	p, err := t.codec.AppendMessage(make([]byte, 4, 64+sizeHint(m.ID, 0)+sizeHint(m.Args, 0)), m)
	if err != nil {
		return nil, err
	}
	n := len(p) - 4
	p[0], p[1], p[2], p[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return p, nil
}

// ServerHandshake sends the announcement ("Z5" or "M5") and reads the
// client's answer. It returns the codec chosen by the client's letter, or
// ruok=true for the status probe. Any other answer is a *HandshakeError.
func serverHandshake(nc net.Conn, fr *FrameReader, announce string) (codec Codec, ruok bool, err error) {
	if _, err := nc.Write(AppendFrame(nil, []byte(announce))); err != nil {
		return nil, false, err
	}
	p, err := fr.ReadFrame()
	if err != nil {
		return nil, false, err
	}
	if string(p) == ruokProbe {
		return nil, true, nil
	}
	if len(p) != 1+len(ProtocolVersion) || string(p[1:]) != ProtocolVersion {
		return nil, false, &HandshakeError{Got: bytes.Clone(p)}
	}
	c := CodecFor(p[0])
	if c == nil {
		return nil, false, &HandshakeError{Got: bytes.Clone(p)}
	}
	return c, false, nil
}

// clientHandshake reads the server announcement and answers with the
// server's letter and version 5; servers older than 5 are refused.
func clientHandshake(nc net.Conn, fr *FrameReader) (Codec, error) {
	p, err := fr.ReadFrame()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		var big *FrameTooLargeError
		if errors.As(err, &big) {
			// Typically another protocol: "HTTP" read as a frame size.
			return nil, fmt.Errorf("not a ZEO server? its first bytes %q are no protocol announcement: %w", binary.BigEndian.AppendUint32(nil, big.Size), err)
		}
		return nil, fmt.Errorf("reading the server's protocol announcement: %w", err)
	}
	if len(p) < 2 {
		return nil, &HandshakeError{Got: bytes.Clone(p)}
	}
	codec := CodecFor(p[0])
	// Version = min(server, ours), compared as byte strings like Python.
	version := string(p[1:])
	if version > ProtocolVersion {
		version = ProtocolVersion
	}
	if codec == nil || version != ProtocolVersion {
		return nil, &HandshakeError{Got: bytes.Clone(p)}
	}
	if _, err := nc.Write(AppendFrame(nil, []byte{p[0], ProtocolVersion[0]})); err != nil {
		return nil, err
	}
	return codec, nil
}

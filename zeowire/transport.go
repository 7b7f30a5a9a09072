package zeowire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
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

// DefaultOutboundQueue is how many encoded messages may wait for the writer
// of one connection.
const DefaultOutboundQueue = 1024

// transport is the part shared by server connections and ClientConn: a
// frame reader used by one reading goroutine, and a bounded queue of encoded
// payloads drained by a writer goroutine so that no sender ever writes to
// the socket directly (frames are never interleaved).
type transport struct {
	nc    net.Conn
	fr    *FrameReader
	codec Codec

	out       chan []byte
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error // why the connection was closed, set before done closes
	writerWG  sync.WaitGroup
}

func newTransport(nc net.Conn, fr *FrameReader, queue int) *transport {
	if queue <= 0 {
		queue = DefaultOutboundQueue
	}
	t := &transport{nc: nc, fr: fr, out: make(chan []byte, queue), done: make(chan struct{})}
	t.writerWG.Add(1)
	go t.writeLoop()
	return t
}

func (t *transport) writeLoop() {
	defer t.writerWG.Done()
	w := bufio.NewWriterSize(t.nc, 64<<10)
	for {
		var p []byte
		select {
		case p = <-t.out:
		case <-t.done:
			// Flush what was queued before the close so that a final
			// reply (e.g. the ruok JSON) is not lost.
			for {
				select {
				case p := <-t.out:
					if writeFrame(w, p) != nil {
						return
					}
				default:
					w.Flush()
					return
				}
			}
		}
		if err := writeFrame(w, p); err != nil {
			t.close(fmt.Errorf("write: %w", err))
			return
		}
		if len(t.out) == 0 {
			if err := w.Flush(); err != nil {
				t.close(fmt.Errorf("write: %w", err))
				return
			}
		}
	}
}

func writeFrame(w *bufio.Writer, p []byte) error {
	var hdr [4]byte
	hdr[0], hdr[1], hdr[2], hdr[3] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// send queues an encoded payload, waiting while the queue is full.
func (t *transport) send(p []byte) error {
	select {
	case <-t.done:
		return ErrClosed
	default:
	}
	select {
	case t.out <- p:
		return nil
	case <-t.done:
		return ErrClosed
	}
}

// trySend queues a payload without waiting; false if the queue is full or
// the connection closed.
func (t *transport) trySend(p []byte) bool {
	select {
	case <-t.done:
		return false
	default:
	}
	select {
	case t.out <- p:
		return true
	default:
		return false
	}
}

// close shuts the connection down once; the reason is kept for callers.
func (t *transport) close(reason error) {
	t.closeOnce.Do(func() {
		t.closeErr = reason
		close(t.done)
		go func() {
			// Let the writer flush what is queued, then close the socket,
			// which also ends the reader.
			t.writerWG.Wait()
			t.nc.Close()
		}()
	})
}

// closeNow closes the socket without flushing.
func (t *transport) closeNow(reason error) {
	t.close(reason)
	t.nc.Close()
}

// encode builds the payload of m with the connection's codec.
func (t *transport) encode(m *Message) ([]byte, error) {
	return t.codec.AppendMessage(nil, m)
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

package zeowire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// DefaultMaxFrameSize is the default cap on an incoming frame's payload. The
// reference has none (a single header can make it buffer 4 GiB); a frame
// larger than the cap is refused and the connection closed. Object records
// larger than this need a larger setting.
const DefaultMaxFrameSize = 256 << 20

// FrameTooLargeError reports a frame header announcing more than the cap.
type FrameTooLargeError struct {
	Size, Max uint32
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("frame of %d bytes exceeds the limit of %d bytes", e.Size, e.Max)
}

// frameReadBuffer is the read buffer of a FrameReader.
const frameReadBuffer = 64 << 10

// FrameReader reads length-prefixed frames ("sized messages"): a 4-byte
// big-endian length then that many payload bytes.
type FrameReader struct {
	r   *bufio.Reader
	max uint32
	buf []byte
	src io.Reader // the underlying reader while r is a small buffer
}

// NewFrameReader reads frames from r, refusing payloads larger than max
// (0 means DefaultMaxFrameSize).
func NewFrameReader(r io.Reader, max uint32) *FrameReader {
	if max == 0 {
		max = DefaultMaxFrameSize
	}
	return &FrameReader{r: bufio.NewReaderSize(r, frameReadBuffer), max: max}
}

// newSmallFrameReader is a FrameReader with a small read buffer, for
// connections that have not registered yet; resize gives it the full one.
func newSmallFrameReader(r io.Reader, max uint32) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 4<<10), max: max, src: r}
}

// resize switches to a read buffer of size bytes, keeping what is
// buffered (a client may send its next calls right behind register).
func (fr *FrameReader) resize(size int) {
	if fr.src == nil || fr.r.Size() >= size {
		return
	}
	var src io.Reader = fr.src
	if n := fr.r.Buffered(); n > 0 {
		pending, _ := fr.r.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(pending)), fr.src)
	}
	fr.r = bufio.NewReaderSize(src, size)
	fr.src = nil
}

// ReadFrame returns the next payload. The slice is valid until the next call.
// A clean end of stream before a header is io.EOF; inside a frame it is
// io.ErrUnexpectedEOF.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > fr.max {
		return nil, &FrameTooLargeError{Size: n, Max: fr.max}
	}
	// Grow in steps while reading so a header alone cannot make us allocate
	// the announced size before the bytes actually arrive.
	if cap(fr.buf) >= int(n) {
		fr.buf = fr.buf[:n]
		if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
			return nil, unexpected(err)
		}
		return fr.buf, nil
	}
	fr.buf = fr.buf[:0]
	const step = 1 << 20
	for uint32(len(fr.buf)) < n {
		chunk := min(int(n)-len(fr.buf), step)
		start := len(fr.buf)
		fr.buf = append(fr.buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(fr.r, fr.buf[start:]); err != nil {
			return nil, unexpected(err)
		}
	}
	return fr.buf, nil
}

// Release drops a large buffer so that one big frame does not pin memory
// for the life of the connection.
func (fr *FrameReader) Release() {
	if cap(fr.buf) > 1<<20 {
		fr.buf = nil
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendFrame appends the 4-byte header and the payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}
